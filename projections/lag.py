"""How far behind each projection is: Kafka's end offsets minus the positions it committed.

A projection's positions live in Postgres (``projection_checkpoints``, written in the same
transaction as its rows), so its lag is computed from there and from the topics' high
watermarks, not from a consumer group: a replayed or rebuilt projection is measured the same way.

The probes that show it (``/metrics``, ``/readyz``, ``/health``, the projector's metrics port)
read ``lag_cache``: one measurement per ``MAX_AGE_S`` whatever the number of callers, by a
``LagProbe`` that keeps one consumer and one connection, within ``BUDGET_S`` (issue 17,
finding 6). ``aion_projection_lag_measurements_total`` counts the measurements.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import Counter

from aion.single_flight import SingleFlight

MAX_AGE_S = 2.0  # a lag this old is still the answer
BUDGET_S = 5.0  # one measurement's bound, Kafka and Postgres together
MEASUREMENTS = Counter(
    "aion_projection_lag_measurements",
    "Projection lag measurements against Kafka and Postgres (shared by concurrent scrapes)",
)


def end_offsets(kafka: str, topics: Iterable[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (low, high) watermarks, with a consumer of its own."""
    consumer = Consumer(
        {"bootstrap.servers": kafka, "group.id": "aion-lag", "enable.auto.commit": False}
    )
    try:
        return watermarks(consumer, topics, time.monotonic() + BUDGET_S)
    finally:
        consumer.close()


def watermarks(
    consumer: Consumer, topics: Iterable[str], deadline: float
) -> dict[tuple[str, int], tuple[int, int]]:
    """The topics' watermarks, in one metadata request and one request per partition, all
    before ``deadline`` (monotonic) or TimeoutError."""
    wanted = set(topics)
    metadata = consumer.list_topics(timeout=_left(deadline)).topics
    found: dict[tuple[str, int], tuple[int, int]] = {}
    for topic in sorted(wanted):
        described = metadata.get(topic)
        if described is None or described.error is not None:
            continue
        for p in described.partitions:
            found[(topic, p)] = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=_left(deadline)
            )
    return found


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"projection lag not measured within {BUDGET_S} s")
    return left


def committed(database_url: str, projection: str) -> dict[tuple[str, int], int]:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        rows = conn.execute(
            "select topic, partition, next_offset from projection_checkpoints"
            " where projection = %s",
            (projection,),
        ).fetchall()
    return {(topic, partition): offset for topic, partition, offset in rows}


def lag(ends: dict[tuple[str, int], tuple[int, int]], positions: dict[tuple[str, int], int]) -> int:
    """Messages not yet applied: from the committed position (or the log's start) to its end."""
    return sum(max(high - max(positions.get(tp, low), low), 0) for tp, (low, high) in ends.items())


def lags_of(
    projections: Mapping[str, tuple[str, ...]],
    ends: dict[tuple[str, int], tuple[int, int]],
    positions: dict[str, dict[tuple[str, int], int]],
) -> dict[str, int]:
    result = {}
    for name, its_topics in projections.items():
        mine = {tp: w for tp, w in ends.items() if tp[0] in its_topics}
        result[name] = lag(mine, positions.get(name, {}))
    return result


def projection_lags(
    kafka: str, database_url: str, projections: dict[str, tuple[str, ...]]
) -> dict[str, int]:
    """projection name -> its lag in messages, for projections given as name -> topics
    (measured once, with a consumer and connections of its own: for the CLI)."""
    topics = sorted({t for ts in projections.values() for t in ts})
    ends = end_offsets(kafka, topics)
    return lags_of(projections, ends, {name: committed(database_url, name) for name in projections})


class LagProbe:
    """Measures every projection's lag with one long-lived consumer (never subscribed: it only
    asks for watermarks) and one connection, reopened after a failure. Not thread-safe: the
    ``SingleFlight`` around it runs one measurement at a time."""

    def __init__(self, kafka: str, database_url: str, projections: dict[str, tuple[str, ...]]):
        self.kafka = kafka
        self.database_url = database_url
        self.projections = projections
        self.consumer: Consumer | None = None
        self.conn: psycopg.Connection[Any] | None = None

    def measure(self) -> dict[str, int]:
        MEASUREMENTS.inc()
        deadline = time.monotonic() + BUDGET_S
        try:
            topics = sorted({t for ts in self.projections.values() for t in ts})
            ends = watermarks(self._consumer(), topics, deadline)
            return lags_of(self.projections, ends, self._positions(deadline))
        except Exception:
            self.close()  # a broken consumer or connection is not reused
            raise

    def _consumer(self) -> Consumer:
        if self.consumer is None:
            self.consumer = Consumer(
                {
                    "bootstrap.servers": self.kafka,
                    "group.id": "aion-lag",
                    "enable.auto.commit": False,
                    "socket.timeout.ms": int(BUDGET_S * 1000),
                }
            )
        return self.consumer

    def _positions(self, deadline: float) -> dict[str, dict[tuple[str, int], int]]:
        left_ms = int(_left(deadline) * 1000)
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(
                self.database_url,
                connect_timeout=max(int(left_ms / 1000), 1),
                autocommit=True,
                application_name="aion-lag",
            )
        self.conn.execute("select set_config('statement_timeout', %s, false)", (str(left_ms),))
        rows = self.conn.execute(
            "select projection, topic, partition, next_offset from projection_checkpoints"
            " where projection = any(%s)",
            (list(self.projections),),
        ).fetchall()
        positions: dict[str, dict[tuple[str, int], int]] = {}
        for name, topic, partition, offset in rows:
            positions.setdefault(name, {})[(topic, partition)] = offset
        return positions

    def close(self) -> None:
        consumer, conn, self.consumer, self.conn = self.consumer, self.conn, None, None
        if consumer is not None:
            consumer.close()
        if conn is not None:
            conn.close()


_caches: dict[tuple[str, str, tuple[tuple[str, tuple[str, ...]], ...]], SingleFlight[Any]] = {}
_caches_lock = threading.Lock()


def lag_cache(
    kafka: str, database_url: str, projections: dict[str, tuple[str, ...]]
) -> SingleFlight[dict[str, int]]:
    """This process's shared lag measurement for these servers and projections."""
    key = (kafka, database_url, tuple(sorted(projections.items())))
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            probe = LagProbe(kafka, database_url, dict(projections))
            cache = _caches[key] = SingleFlight(probe.measure, MAX_AGE_S)
        return cache
