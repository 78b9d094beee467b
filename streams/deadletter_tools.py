"""`aion dlq list | replay | purge`: look at dead letters, send them back, or drop them.

A dead letter is the failed message's own key and bytes on `aion.deadletter`, with headers
naming the error and where it came from. Replay produces those bytes again to the source
topic (after a fix, they will go through; a message that still fails comes back here).
Purge deletes the records up to the current end of each partition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas.topics import DEADLETTER, producer_config
from streams.topic_snapshot import partition_ranges, read_snapshot, tool_consumer


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: str | None
    error: str
    source_topic: str
    source_partition: int
    source_offset: int
    failed_at: int
    size: int

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "position": self.position}


def _headers(raw: Any) -> dict[str, str]:
    pairs = raw.items() if isinstance(raw, dict) else raw or []
    return {
        k: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v or "") for k, v in pairs
    }


def _read(kafka: str) -> list[tuple[DeadLetter, bytes | None, bytes]]:
    found = []
    for message in read_snapshot(kafka, DEADLETTER, "dlq-tool"):
        h = _headers(message.headers())
        value = message.value() or b""
        key = message.key()
        letter = DeadLetter(
            int(message.partition() or 0),
            int(message.offset() or 0),
            key.decode("utf-8", "replace") if key else None,
            h.get("aion-error", ""),
            h.get("aion-source-topic", ""),
            int(h.get("aion-source-partition", "-1")),
            int(h.get("aion-source-offset", "-1")),
            int(h.get("aion-failed-at", "0")),
            len(value),
        )
        found.append((letter, key, value))
    return sorted(found, key=lambda f: (f[0].partition, f[0].offset))


def list_dead_letters(kafka: str) -> list[DeadLetter]:
    return [letter for letter, _, _ in _read(kafka)]


def replay(kafka: str, positions: set[str] | None = None) -> list[DeadLetter]:
    """Produce the chosen dead letters (all when ``positions`` is None) to their sources."""
    producer = Producer(producer_config(kafka, **{"enable.idempotence": True}))
    chosen = [
        (letter, key, value)
        for letter, key, value in _read(kafka)
        if letter.source_topic and (positions is None or letter.position in positions)
    ]
    for letter, key, value in chosen:
        producer.produce(
            letter.source_topic,
            key=key,
            value=value,
            headers=[("aion-replayed-from", f"{DEADLETTER}:{letter.position}".encode())],
        )
    if producer.flush(30) != 0:
        raise RuntimeError("some replayed messages were not acknowledged by Kafka")
    return [letter for letter, _, _ in chosen]


def purge(kafka: str) -> int:
    """Delete every dead letter up to the current end of each partition; returns how many."""
    admin = AdminClient({"bootstrap.servers": kafka})
    consumer = tool_consumer(kafka, "dlq-tool")
    try:
        ranges = partition_ranges(consumer, DEADLETTER)
    finally:
        consumer.close()
    targets = [TopicPartition(DEADLETTER, p, high) for p, (_, high) in ranges.items()]
    count = sum(high - low for low, high in ranges.values())
    if targets:
        for future in admin.delete_records(targets, request_timeout=30).values():
            future.result()
    return count
