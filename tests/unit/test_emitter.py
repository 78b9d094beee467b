"""The command processor's librdkafka producer when no broker answers: every message of the
batch fails as a timeout, which decision 49 waits out (the batch is handled again), never as
a refusal of the message itself (which would reject the command)."""

from __future__ import annotations

import asyncio
import socket

from streams.emitter import Emitter
from streams.producibility import is_message_refusal


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed


def test_without_a_broker_every_message_fails_as_a_timeout_to_wait_out() -> None:
    async def run() -> list[BaseException | None]:
        emitter = Emitter(f"127.0.0.1:{closed_port()}", 1_000_000, delivery_timeout_ms=1_500)
        acks = [emitter.send("aion.events.task", b"k", b"v%d" % n, {"h": b"1"}) for n in range(3)]
        assert not any(ack.done() for ack in acks)  # resolved by the flush, not before
        await emitter.flush()
        return [ack.exception() for ack in acks]

    errors = asyncio.run(run())
    assert all(error is not None for error in errors), errors
    assert not any(is_message_refusal(error) for error in errors if error is not None)
