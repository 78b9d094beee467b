"""Live event streams (SSE) as a bounded resource: their own Redis pool, a cap per caller.

Each open stream holds one Redis connection in a blocking ``XREAD`` for as long as the task
runs. Before, one caller could open streams until Redis or the API's pool gave out, and a
stream's connection came from the pool every request's rate limit and idempotency claim use.
Now streams take connections from a pool of their own (``AION_SSE_STREAMS_MAX``), so they can
never starve the gate, and one caller (an API key, or a token's subject) holds at most
``AION_SSE_STREAMS_PER_CALLER`` at once in this process: the next one is refused with 429 and
``Retry-After``, before any connection is taken. The counts are this process's own (they bound
this process's connections); a stream gives its slot back when it ends, whichever way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis.asyncio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from aion.redis_clients import RedisLimits, async_client
from aion.settings import Settings
from api.problems import Problem

KEEPALIVE_MS = 15_000  # a comment line this often keeps an idle stream open through proxies
RETRY_AFTER_S = 5


@dataclass
class Slot:
    """One open stream of one caller; giving it back twice gives it back once."""

    slots: StreamSlots
    caller: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.slots.give_back(self.caller)


@dataclass
class StreamSlots:
    """How many streams each caller, and the process, holds open now."""

    per_caller: int
    total: int
    held: Counter[str] = field(default_factory=Counter)

    def take(self, caller: str) -> Slot:
        """A slot for one more stream of ``caller``, or the Problem that refuses it."""
        if self.held[caller] >= self.per_caller:
            raise Problem(
                429,
                "too-many-streams",
                "Too many live streams",
                f"this caller already has {self.held[caller]} live streams open (at most"
                f" {self.per_caller}); close one, or retry after {RETRY_AFTER_S} s",
                headers={"Retry-After": str(RETRY_AFTER_S)},
                limit=self.per_caller,
            )
        if sum(self.held.values()) >= self.total:
            raise Problem(
                503,
                "too-many-streams",
                "This server holds all the live streams it can",
                f"{self.total} live streams are open on this server; retry after {RETRY_AFTER_S} s",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.held[caller] += 1
        return Slot(self, caller)

    def give_back(self, caller: str) -> None:
        self.held[caller] -= 1
        if self.held[caller] <= 0:
            del self.held[caller]


@dataclass
class LiveStreams:
    """The streams' Redis client (its own pool) and their slots."""

    redis: redis.asyncio.Redis
    slots: StreamSlots

    @classmethod
    def open(cls, settings: Settings) -> LiveStreams:
        limits = RedisLimits(
            # A blocking XREAD waits up to KEEPALIVE_MS for an answer: the timeout is on top.
            socket_timeout_s=KEEPALIVE_MS / 1000 + settings.redis_socket_timeout_s,
            connect_timeout_s=settings.redis_connect_timeout_s,
            max_connections=settings.sse_streams_max,
        )
        return cls(
            redis=async_client(settings.redis, limits),
            slots=StreamSlots(settings.sse_streams_per_caller, settings.sse_streams_max),
        )

    async def close(self) -> None:
        await self.redis.aclose()


class SlotResponse(StreamingResponse):
    """A stream that gives its slot back when the response ends: finished, failed, or the
    client gone (Starlette cancels the body then, so a ``finally`` in it may never run)."""

    def __init__(self, slot: Slot, events: AsyncIterator[str]) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()
