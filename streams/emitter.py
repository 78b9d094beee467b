"""The command processor's messages (events, dispatches, refusals) through librdkafka.

Faust's aiokafka producer spent about a quarter of the worker's CPU per task in Python (its
sender, batches, futures per message: issue 16's profile); librdkafka does the same work in C.
Faust still produces its tables' changelogs. Each message gets an asyncio future; delivery
reports are collected by ``flush`` (librdkafka calls them in the flushing thread) and resolved
on the event loop, so one batch of commands costs one hop to a thread, not one per message.

Idempotence keeps a partition's messages in order and free of retry duplicates; a message not
delivered within ``DELIVERY_TIMEOUT_MS`` fails (it is not left queued to arrive later while the
batch is handled again). Nothing needs flushing at shutdown: a batch's documents are stored
only after its flush, so a batch cut short is handled again by the partition's next owner.
"""

from __future__ import annotations

import asyncio

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from schemas.topics import producer_config

DELIVERY_TIMEOUT_MS = 30_000
LINGER_MS = 5  # a batch of commands sends its messages together: fewer, larger requests
FULL_QUEUE_POLL_S = 0.01


class Emitter:
    def __init__(
        self, bootstrap: str, max_request_size: int, delivery_timeout_ms: int = DELIVERY_TIMEOUT_MS
    ) -> None:
        self.delivery_timeout_ms = delivery_timeout_ms
        self.producer = Producer(
            producer_config(
                bootstrap,
                **{
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": LINGER_MS,
                    "compression.type": "lz4",  # aiokafka (Faust) reads it through cramjam
                    "message.max.bytes": max_request_size,
                    "delivery.timeout.ms": delivery_timeout_ms,
                },
            )
        )
        self._reported: list[tuple[asyncio.Future[None], KafkaError | None]] = []
        self._unsettled: list[asyncio.Future[None]] = []

    def send(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: dict[str, bytes],
        partition: int | None = None,
    ) -> asyncio.Future[None]:
        """Queue one message; its future is resolved by the next ``flush``. Raises what
        librdkafka refuses at once (e.g. a message over ``message.max.bytes``)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def report(error: KafkaError | None, _: Message) -> None:
            self._reported.append((future, error))  # list.append: safe from any thread

        placed = -1 if partition is None else partition  # -1: the key's partition (murmur2)
        while True:
            try:
                self.producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=list(headers.items()),
                    partition=placed,
                    on_delivery=report,
                )
                break
            except BufferError:  # librdkafka's queue is full: let reports drain it
                self.producer.poll(FULL_QUEUE_POLL_S)
        self._unsettled.append(future)
        return future

    async def flush(self) -> None:
        """Wait until every queued message was delivered or failed, then resolve their
        futures; one still unanswered after the delivery timeout fails as timed out."""
        timeout_s = self.delivery_timeout_ms / 1000 + 5
        await asyncio.to_thread(self.producer.flush, timeout_s)
        reported, self._reported = self._reported, []
        for future, error in reported:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(KafkaException(error))
        unsettled, self._unsettled = self._unsettled, []
        for future in unsettled:
            if not future.done():
                future.set_exception(KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT)))
