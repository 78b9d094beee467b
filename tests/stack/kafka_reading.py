"""Reading our topics in tests: every record under a key, decoded, until what we wait for."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from aion.settings import Settings
from schemas.codec import Codec

Records = list[tuple[str, dict[str, Any]]]


def reader(settings: Settings) -> Consumer:
    """A consumer of no group's progress: it reads where it is assigned and commits nothing."""
    return Consumer(
        {
            "bootstrap.servers": settings.kafka,
            "group.id": f"aion-tests-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )


def records_until(
    settings: Settings,
    topic: str,
    key: str,
    done: Callable[[Records], bool],
    timeout: float = 30,
) -> Records:
    """The decoded records keyed ``key`` on ``topic``, read from the start until ``done`` says
    so or ``timeout`` passes (then what was found, for the assertion to show)."""
    codec = Codec(settings.registry)
    consumer = reader(settings)
    found: Records = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error() and message.key() == key.encode():
                found.append(codec.decode(topic, message.value()))
                if done(found):
                    return found
            elif message is None and done(found):
                return found
        return found
    finally:
        consumer.close()


def names(records: Records) -> list[str]:
    return [name.rsplit(".", 1)[1] for name, _ in records]


def has(record: str, count: int = 1) -> Callable[[Records], bool]:
    """Done when ``record`` (a short name such as TaskSucceeded) was seen ``count`` times."""
    return lambda found: names(found).count(record) >= count
