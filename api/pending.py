"""Where a command is while no decider has answered it: ``aion:command:<id>`` in Redis, so
that `GET /v1/commands/{id}` can say "pending" (with its Kafka position) on any API replica.

Written in batches: each accepted command adds its entry here, and one script call every
5 milliseconds stores them all. One round trip per request cost a tenth of the API's
time under load; a batch costs one round trip per flush. Until its flush, an entry is answered
from this process's memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis

log = logging.getLogger("aion.api.pending")
TTL_SECONDS = 7 * 24 * 3600
FLUSH_AFTER_S = 0.005
# ARGV: the TTL in seconds, then key, value, key, value...: one command per flush, where a
# pipeline of SETs cost redis-py's packing and parsing per entry.
STORE = """
local ttl = ARGV[1]
for i = 2, #ARGV, 2 do
  redis.call('SET', ARGV[i], ARGV[i + 1], 'EX', ttl)
end
return #ARGV / 2
"""


class PendingCommands:
    def __init__(self, redis: Redis, ttl_s: int = TTL_SECONDS) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._waiting: dict[str, str] = {}  # not yet handed to a flush
        self._flushing: dict[str, str] = {}  # in a flush that has not returned
        self._scheduled: asyncio.Task[None] | None = None
        self._store: Any = redis.register_script(STORE)

    def add(self, command_id: str, value: str) -> None:
        self._waiting[command_id] = value
        if self._scheduled is None:
            self._scheduled = asyncio.get_running_loop().create_task(self._flush_soon())

    def local(self, command_id: str) -> str | None:
        return self._waiting.get(command_id) or self._flushing.get(command_id)

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_AFTER_S)
        self._scheduled = None
        await self.flush()

    async def flush(self) -> None:
        if not self._waiting:
            return
        batch, self._waiting = self._waiting, {}
        self._flushing.update(batch)
        try:
            pairs: list[str] = []
            for command_id, value in batch.items():
                pairs += [f"aion:command:{command_id}", value]
            await self._store(args=[self.ttl_s, *pairs])
        except Exception:  # the command is on Kafka; only its "pending" answer is lost
            log.exception("could not record %d pending commands in Redis", len(batch))
        finally:
            for command_id in batch:
                self._flushing.pop(command_id, None)

    async def get(self, command_id: str) -> str | None:
        found = self.local(command_id)
        if found is not None:
            return found
        raw = await self.redis.get(f"aion:command:{command_id}")
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def close(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        await self.flush()
