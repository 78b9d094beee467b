"""Runs a projection: consume its topics, apply each batch and its Kafka position in one
Postgres transaction.

The checkpoint table, not Kafka's committed offsets, is the truth: on assignment the consumer
seeks to the positions stored beside the rows, so a crash between the database commit and
anything else neither loses nor repeats an event. Offsets are also committed to Kafka
(asynchronously), only so that lag shows up in the usual tools.

Each event applied is counted (``aion_projection_events_applied_total``) and, when it carries a
trace, applied in a span that continues it; each batch is timed with its commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, NamedTuple, Protocol, runtime_checkable

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from opentelemetry import trace

from aion import telemetry, tracing
from aion.metrics import PROJECTION_BATCH_SECONDS, PROJECTION_EVENTS
from projections.decoding import Decoder
from schemas.codec import Codec, DecodeError, RegistryUnavailable

COMMIT_EVERY_S = 1.0
FETCH_MIN_BYTES = 65_536
FETCH_WAIT_MS = 10
log = logging.getLogger(__name__)
tracer = trace.get_tracer("aion.projections")


class Position(NamedTuple):
    """Where an event is (a tuple: made for every event of a rebuild, three times cheaper than
    a frozen dataclass)."""

    topic: str
    partition: int
    offset: int


def position(message: Message) -> Position:
    return Position(str(message.topic()), int(message.partition() or 0), int(message.offset() or 0))


def take_available(consumer: Consumer, most: int, timeout: float) -> list[Message]:
    """Wait up to ``timeout`` for one message, then take what else is already fetched.

    ``Consumer.consume(n, timeout)`` waits until it has ``n`` messages or the timeout passes:
    below a batch per timeout, every event waited out the timeout (half a second) before it
    was projected. Batches now grow with the load instead of with the clock.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=most - 1, timeout=0)] if most > 1 else [first]


# One decoded event as a projection gets it: record full name, value, Kafka position.
Delivered = tuple[str, dict[str, Any], Position]


class Projection(Protocol):
    name: str
    topics: tuple[str, ...]

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None: ...


@runtime_checkable
class BatchProjection(Projection, Protocol):
    """A projection that applies a whole batch at once (in event order, same guarantees)."""

    def apply_batch(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> None: ...


def load_checkpoints(conn: psycopg.Connection[Any], projection: str) -> dict[tuple[str, int], int]:
    rows = conn.execute(
        "select topic, partition, next_offset from projection_checkpoints where projection = %s",
        (projection,),
    )
    return {(t, p): o for t, p, o in rows}


def save_checkpoints(
    cur: psycopg.Cursor[Any], projection: str, messages: Iterable[Message]
) -> None:
    latest: dict[tuple[str, int], int] = {}
    for m in messages:  # a partition's messages come in offset order: the last one's wins
        key = (str(m.topic()), m.partition() or 0)
        next_offset = (m.offset() or 0) + 1
        if next_offset > latest.get(key, -1):
            latest[key] = next_offset
    cur.executemany(
        "insert into projection_checkpoints (projection, topic, partition, next_offset)"
        " values (%s, %s, %s, %s) on conflict (projection, topic, partition) do update"
        " set next_offset = greatest(projection_checkpoints.next_offset, excluded.next_offset),"
        " updated_at = now()",
        [(projection, t, p, o) for (t, p), o in latest.items()],
    )


class ProjectionRunner:
    def __init__(
        self,
        projection: Projection,
        *,
        kafka: str,
        database_url: str,
        codec: Codec,
        batch_size: int = 500,
    ) -> None:
        self.projection = projection
        self.database_url = database_url
        self.codec = codec
        self.decoder = Decoder(codec)
        self.batch_size = batch_size
        self.stopping = threading.Event()
        # Each batch transaction takes the projection's advisory lock, so that a replay can
        # pause this runner for the moment it swaps tables (projections/replay.py).
        self.take_lock = True
        # A span per traced event, under the span that produced it; a replay turns it off
        # (re-applying history is not part of those requests, and extracting each event's
        # trace context cost a rebuild a fifth of its time).
        self.trace = True
        self.group = f"aion.projection.{projection.name}"
        self.consumer = Consumer(
            {
                "bootstrap.servers": kafka,
                "group.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                # A crashed projector's partitions move on within seconds, not librdkafka's 45.
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 3000,
                # A busy topic answers each fetch at once with the few records it has: a fetch
                # that waits up to 10 ms for 64 KiB takes a whole batch, in fewer requests.
                "fetch.min.bytes": FETCH_MIN_BYTES,
                "fetch.wait.max.ms": FETCH_WAIT_MS,
            }
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with psycopg.connect(self.database_url) as conn:
            stored = load_checkpoints(conn, self.projection.name)
        for tp in partitions:
            tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        consumer.assign(partitions)
        log.info(
            "%s assigned %s",
            self.projection.name,
            [(tp.topic, tp.partition, tp.offset) for tp in partitions],
        )

    def run(self) -> None:
        self.consumer.subscribe(list(self.projection.topics), on_assign=self._on_assign)
        committed_at, uncommitted = 0.0, False
        with psycopg.connect(self.database_url) as conn:
            while not self.stopping.is_set():
                messages = take_available(self.consumer, self.batch_size, timeout=0.5)
                batch = [m for m in messages if self._usable(m)]
                if batch:
                    self.apply_batch(conn, batch)
                    uncommitted = True
                # Kafka's offsets only show lag to the usual tools (the checkpoint is the
                # truth): committed at most every COMMIT_EVERY_S, not once per batch.
                if uncommitted and time.monotonic() - committed_at >= COMMIT_EVERY_S:
                    self.consumer.commit(asynchronous=True)
                    committed_at, uncommitted = time.monotonic(), False
        if uncommitted:
            self.consumer.commit(asynchronous=False)
        self.consumer.close()

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.retriable() or error.code() == -191:  # -191: partition EOF
            return False
        raise KafkaException(error)

    def decode_batch(self, batch: list[Message]) -> list[tuple[Message, Delivered]]:
        """The batch's events, decoded; poison messages left out."""
        delivered: list[tuple[Message, Delivered]] = []
        for message in batch:
            record = self._decode(message)
            if record is not None:
                delivered.append((message, (record[0], record[1], position(message))))
        return delivered

    def apply_batch(
        self,
        conn: psycopg.Connection[Any],
        batch: list[Message],
        decoded: list[tuple[Message, Delivered]] | None = None,
    ) -> None:
        """Apply a batch and its positions in one transaction (``decoded``: the batch's
        events when they were decoded beforehand, as a replay does on another thread)."""
        started = time.perf_counter()
        delivered = self.decode_batch(batch) if decoded is None else decoded
        # A batched projection's statements need no result before the next is sent (but for
        # its loads), so they go in pipeline mode: Postgres writes one part while Python folds
        # the next. Errors still end the transaction before this returns.
        batched = isinstance(self.projection, BatchProjection)
        with (
            conn.pipeline() if batched else nullcontext(),
            conn.transaction(),
            conn.cursor() as cur,
        ):
            if self.take_lock:
                key = f"aion.projection.{self.projection.name}"
                cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (key,))
            if batched:
                assert isinstance(self.projection, BatchProjection)
                with self._batch_spans(delivered):
                    self.projection.apply_batch(cur, [d for _, d in delivered])
            else:
                for message, (name, value, at) in delivered:
                    envelope = value.get("envelope") if self.trace else None
                    with self._event_span(message, name, envelope):
                        self.projection.apply(cur, name, value, at)
            save_checkpoints(cur, self.projection.name, batch)
        PROJECTION_EVENTS.labels(self.projection.name).inc(len(delivered))
        PROJECTION_BATCH_SECONDS.labels(self.projection.name).observe(time.perf_counter() - started)

    @contextmanager
    def _batch_spans(self, delivered: list[tuple[Message, Delivered]]) -> Iterator[None]:
        """The per-event CONSUMER spans of a batch applied at once: each traced event's span
        starts before the batch and ends after it (the time its rows took to write)."""
        spans = []
        for message, (name, value, at) in delivered if self.trace else ():
            envelope = value.get("envelope")
            if tracing.has_parent(envelope):
                spans.append(
                    tracer.start_span(
                        f"process {at.topic}",
                        context=tracing.parent_context(envelope),
                        kind=trace.SpanKind.CONSUMER,
                        attributes=self._span_attributes(message, name, envelope),
                    )
                )
        try:
            yield
        finally:
            for span in spans:
                span.end()

    def _span_attributes(
        self, message: Message, record_name: str, envelope: dict[str, Any] | None
    ) -> dict[str, Any]:
        at = position(message)
        return {
            **tracing.kafka_attributes(
                at.topic, message.key(), at.partition, at.offset, self.group
            ),
            "messaging.message.id": str((envelope or {}).get("event_id")),
            "aion.projection": self.projection.name,
            "aion.event.type": record_name,
        }

    @contextmanager
    def _event_span(
        self, message: Message, record_name: str, envelope: dict[str, Any] | None
    ) -> Iterator[None]:
        """A CONSUMER span per event that carries a trace (child of the span that produced
        it), and the event's correlation ids on every log line meanwhile. Events without a
        trace (imports, old history) get no span: a replay would otherwise make thousands."""
        with telemetry.log_context(**telemetry.envelope_ids(envelope)):
            if not tracing.has_parent(envelope):
                yield
                return
            with tracer.start_as_current_span(
                f"process {message.topic()}",
                context=tracing.parent_context(envelope),
                kind=trace.SpanKind.CONSUMER,
                attributes=self._span_attributes(message, record_name, envelope),
            ):
                yield

    def _decode(self, message: Message) -> tuple[str, dict[str, Any]] | None:
        """The record, None for a poison message (skipped); waits out a registry outage."""
        delay = 0.5
        while True:
            try:
                return self.decoder.decode(str(message.topic()), message.value() or b"")
            except DecodeError as exc:
                # Not ours to repair here: skip it (the stream processors dead-letter it).
                at = position(message)
                log.error("%s skipped undecodable %s: %s", self.projection.name, at, exc)
                return None
            except RegistryUnavailable as exc:
                log.warning("schema registry unavailable (%s); retrying in %.1f s", exc, delay)
                if self.stopping.wait(delay):
                    raise
                delay = min(delay * 2, 10.0)

    def stop(self) -> None:
        self.stopping.set()
