"""Reading a topic as it stands: every partition from its start (or a time) to its end.

The operator tools (dead letters, policy simulation, run verification) read what is on a topic
now, without joining a consumer group or committing anything: partitions are assigned by hand
and each is read up to the end offset it had when reading began.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

STALL_SECONDS = 30.0  # no progress for this long while records remain: give up reading


def partition_ranges(
    consumer: Consumer, topic: str, since_ms: int | None = None
) -> dict[int, tuple[int, int]]:
    """partition -> (first offset to read, end offset), for the partitions with records."""
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return {}
    ranges: dict[int, tuple[int, int]] = {}
    for p in metadata.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            ranges[p] = (low, high)
    if since_ms is not None and ranges:
        wanted = [TopicPartition(topic, p, since_ms) for p in ranges]
        for found in consumer.offsets_for_times(wanted, timeout=10):
            low, high = ranges[found.partition]
            # -1: no record at or after that time in this partition.
            start = high if found.offset < 0 else max(low, found.offset)
            ranges[found.partition] = (start, high)
    return {p: (start, end) for p, (start, end) in ranges.items() if end > start}


def tool_consumer(kafka: str, purpose: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"aion-{purpose}",  # required by the client; never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )


def read_snapshot(
    kafka: str, topic: str, purpose: str, since_ms: int | None = None
) -> Iterator[Message]:
    """The topic's records (from ``since_ms`` on), partition by partition order, up to the end
    each partition had when reading began. Raises TimeoutError if reading stalls."""
    consumer = tool_consumer(kafka, purpose)
    try:
        ranges = partition_ranges(consumer, topic, since_ms)
        limits = {p: end for p, (_, end) in ranges.items()}
        ends = dict(limits)  # the partitions still being read
        consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in ranges.items()])
        last_progress = time.monotonic()
        while ends:
            messages = consumer.consume(num_messages=500, timeout=0.2)
            if not messages:
                # Offsets can have gaps (e.g. transaction markers): ask where each one stands.
                for tp in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
                    if tp.offset >= ends[tp.partition]:
                        ends.pop(tp.partition)
                if ends and time.monotonic() - last_progress > STALL_SECONDS:
                    raise TimeoutError(f"reading {topic} made no progress for {STALL_SECONDS} s")
                continue
            last_progress = time.monotonic()
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise KafkaException(error)
                    continue
                partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                if offset + 1 >= limits.get(partition, 0):
                    ends.pop(partition, None)
                if offset >= limits.get(partition, 0):
                    continue  # written after reading began
                yield message
    finally:
        consumer.close()
