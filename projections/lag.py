"""How far behind each projection is: Kafka's end offsets minus the positions it committed.

A projection's positions live in Postgres (``projection_checkpoints``, written in the same
transaction as its rows), so its lag is computed from there and from the topics' high
watermarks, not from a consumer group: a replayed or rebuilt projection is measured the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from confluent_kafka import Consumer, TopicPartition


def end_offsets(kafka: str, topics: Iterable[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (low, high) watermarks."""
    consumer = Consumer(
        {"bootstrap.servers": kafka, "group.id": "aion-lag", "enable.auto.commit": False}
    )
    try:
        found: dict[tuple[str, int], tuple[int, int]] = {}
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if metadata is None or metadata.error is not None:
                continue
            for p in metadata.partitions:
                found[(topic, p)] = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=5
                )
        return found
    finally:
        consumer.close()


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


def projection_lags(
    kafka: str, database_url: str, projections: dict[str, tuple[str, ...]]
) -> dict[str, int]:
    """projection name -> its lag in messages, for projections given as name -> topics."""
    topics = sorted({t for ts in projections.values() for t in ts})
    ends = end_offsets(kafka, topics)
    result = {}
    for name, its_topics in projections.items():
        mine = {tp: w for tp, w in ends.items() if tp[0] in its_topics}
        result[name] = lag(mine, committed(database_url, name))
    return result
