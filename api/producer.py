"""An asyncio face on confluent-kafka's producer: await the broker's ack and its position.

librdkafka delivers reports on the thread that polls it; a daemon thread polls and hands each
report back to the event loop, so a request handler can wait for its own message only.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from confluent_kafka import KafkaException, Message, Producer

from schemas.topics import producer_config


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int


class AsyncProducer:
    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer(
            producer_config(
                bootstrap,
                **{
                    # retries never duplicate or reorder within a partition
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 2,
                    "compression.type": "lz4",  # aiokafka (Faust) reads it through cramjam
                },
            )
        )
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closing.is_set():
            self.producer.poll(0.1)

    async def send(
        self, topic: str, key: bytes, value: bytes, headers: dict[str, bytes] | None = None
    ) -> Delivered:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Delivered] = loop.create_future()

        def report(err: object, msg: Message) -> None:
            if err is not None:
                outcome: Delivered | BaseException = KafkaException(err)
            else:
                outcome = Delivered(
                    str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)
                )
            loop.call_soon_threadsafe(_resolve, done, outcome)

        self.producer.produce(
            topic, key=key, value=value, headers=list((headers or {}).items()), on_delivery=report
        )
        return await done

    def ready(self, timeout: float = 2.0) -> bool:
        return bool(self.producer.list_topics(timeout=timeout).brokers)

    def close(self) -> None:
        self.producer.flush(10)
        self._closing.set()
        self._poller.join(timeout=2)


def _resolve(future: asyncio.Future[Delivered], outcome: Delivered | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
