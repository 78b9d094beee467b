"""Reads that wait for the read model (``?after_command=``, ``?after=``) without holding a
Postgres connection while they wait.

Each waiting read used to poll on a pooled connection it kept for up to 10 s, so ten of them
(the pool's size) stalled every other read of the API process. Now a read checks once on a
connection it gives back at once; if it must wait, it parks a future here, and one poller per
process checks every parked target with one query per kind every 50 ms, on a connection it
holds for those queries only. However many reads wait, waiting costs at most one connection
for a few milliseconds per tick.

Waiting is capped: a caller (an API key or a token subject) may have ``WAITS_PER_CALLER``
reads waiting at once and a process ``WAITS_IN_ALL``; one more is a 429 with Retry-After.
A command id nobody knows (no outcome in the read model, no pending entry in Redis, or another
tenant's) is not waited for: the read answers at once with ``Aion-Consistency:
unknown-command``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from psycopg_pool import AsyncConnectionPool

from api.pending import PendingCommands
from api.principal import Principal
from api.problems import Problem
from api.read_targets import AfterCommand, AfterPosition, ReadTarget

log = logging.getLogger("aion.api.read_waits")

WAIT_S = 10.0  # the longest a read waits; then it answers what the read model has (stale)
POLL_S = 0.05
# A command accepted by another API replica reaches Redis within that replica's next flush
# (api/pending.py, every 5 ms): an id not found at once is looked up again for this long.
KNOWN_GRACE_S = 0.5
WAITS_PER_CALLER = 8
WAITS_IN_ALL = 1000

AFTER_COMMAND = "after-command"
AFTER_POSITION = "after-position"
STALE = "stale"
UNKNOWN_COMMAND = "unknown-command"

# Decided once every event of the outcome is in (projections/command_outcomes.py).
OUTCOME = (
    "select tenant_id, cardinality(event_ids) >= outcome_events from command_outcomes"
    " where command_id = %s"
)
DECIDED = (
    "select command_id from command_outcomes where command_id = any(%s)"
    " and cardinality(event_ids) >= outcome_events"
)
REACHED = (
    "select 1 from projection_checkpoints where projection = 'core' and topic = %s"
    " and partition = %s and next_offset > %s"
)
CHECKPOINTS = (
    "select topic, partition, next_offset from projection_checkpoints where projection = 'core'"
)


def caller_of(principal: Principal | None) -> str:
    """Whose cap a wait counts against: the caller's own rate key (API key or subject)."""
    return principal.rate_key if principal is not None else "anonymous"


def sees(principal: Principal | None, tenant_id: str) -> bool:
    """Another tenant's command is as unknown as one that never was (as GET /v1/commands)."""
    return principal is None or principal.platform_admin or principal.tenant == tenant_id


def too_many(parameter: str, detail: str, retry_after_s: int) -> Problem:
    return Problem(
        429,
        "too-many-waits",
        "Too many waiting reads",
        f"{detail}; retry after {retry_after_s} s",
        field=parameter,
        headers={"Retry-After": str(retry_after_s)},
    )


class ReadWaits:
    """The process's waiting reads, and the one poller that wakes them."""

    def __init__(
        self,
        db: AsyncConnectionPool[Any],
        pending: PendingCommands,
        *,
        wait_s: float = WAIT_S,
        per_caller: int = WAITS_PER_CALLER,
        in_all: int = WAITS_IN_ALL,
    ) -> None:
        self.db, self.pending = db, pending
        self.wait_s, self.per_caller, self.in_all = wait_s, per_caller, in_all
        self._commands: dict[str, set[asyncio.Future[None]]] = {}
        self._positions: dict[tuple[str, int], dict[asyncio.Future[None], int]] = {}
        self._slots: dict[str, list[float]] = {}  # caller -> deadlines of its waits
        self._held = 0
        self._poller: asyncio.Task[None] | None = None
        self._failing = False

    async def wait(self, principal: Principal | None, target: ReadTarget) -> str:
        """The read's ``Aion-Consistency``: the target reached, ``stale`` after ``wait_s``,
        or ``unknown-command`` at once."""
        deadline = time.monotonic() + self.wait_s
        if isinstance(target, AfterCommand):
            return await self._after_command(principal, target, deadline)
        return await self._after_position(principal, target, deadline)

    async def _after_command(
        self, principal: Principal | None, target: AfterCommand, deadline: float
    ) -> str:
        found = await self._fetch_one(OUTCOME, (target.command_id,))
        if found is not None:
            tenant_id, decided = found
            if not sees(principal, str(tenant_id)):
                return UNKNOWN_COMMAND
            if decided:
                return AFTER_COMMAND
        with self._slot(caller_of(principal), target.parameter):
            if found is None and not await self._pending(principal, target.command_id):
                return UNKNOWN_COMMAND
            future = asyncio.get_running_loop().create_future()
            parked = self._commands.setdefault(target.command_id, set())
            parked.add(future)
            try:
                reached = await self._parked(future, deadline)
            finally:
                parked.discard(future)
                if not parked:
                    self._commands.pop(target.command_id, None)
        return AFTER_COMMAND if reached else STALE

    async def _after_position(
        self, principal: Principal | None, target: AfterPosition, deadline: float
    ) -> str:
        at = (target.topic, target.partition, target.offset)
        if await self._fetch_one(REACHED, at) is not None:
            return AFTER_POSITION
        with self._slot(caller_of(principal), target.parameter):
            future = asyncio.get_running_loop().create_future()
            parked = self._positions.setdefault((target.topic, target.partition), {})
            parked[future] = target.offset
            try:
                reached = await self._parked(future, deadline)
            finally:
                parked.pop(future, None)
                if not parked:
                    self._positions.pop((target.topic, target.partition), None)
        return AFTER_POSITION if reached else STALE

    async def _fetch_one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """One check on a connection given back at once."""
        async with self.db.connection() as conn, conn.cursor() as cur:
            await cur.execute(sql, args)
            return await cur.fetchone()

    async def _pending(self, principal: Principal | None, command_id: str) -> bool:
        """Whether the command was accepted (an API replica recorded it in Redis) and is the
        caller's to see. When Redis cannot tell, the read waits as if it were."""
        end = time.monotonic() + KNOWN_GRACE_S
        while True:
            try:
                value = await asyncio.wait_for(self.pending.get(command_id), KNOWN_GRACE_S)
            except Exception as exc:
                log.warning("cannot tell whether command %s is pending: %r", command_id, exc)
                return True
            if value is not None:  # "partition:offset:tenant"
                return sees(principal, value.split(":", 2)[-1])
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(POLL_S)

    async def _parked(self, future: asyncio.Future[None], deadline: float) -> bool:
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        done, _ = await asyncio.wait({future}, timeout=max(0.0, deadline - time.monotonic()))
        return bool(done)

    @contextmanager
    def _slot(self, caller: str, parameter: str) -> Iterator[None]:
        """Count one wait against the caller's cap and the process's."""
        now = time.monotonic()
        mine = self._slots.get(caller, [])
        if len(mine) >= self.per_caller:
            retry = max(1, math.ceil(min(mine) - now))
            raise too_many(parameter, f"a caller may have {self.per_caller} reads waiting", retry)
        if self._held >= self.in_all:
            raise too_many(parameter, f"this API process has {self.in_all} reads waiting", 1)
        deadline = now + self.wait_s
        self._slots.setdefault(caller, []).append(deadline)
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            self._slots[caller].remove(deadline)
            if not self._slots[caller]:
                del self._slots[caller]

    async def _poll(self) -> None:
        try:
            while self._commands or self._positions:
                await self._check()
                await asyncio.sleep(POLL_S)
        finally:
            self._poller = None

    async def _check(self) -> None:
        """Wake every parked read whose target the read model has reached."""
        commands = list(self._commands)
        try:
            async with self.db.connection() as conn, conn.cursor() as cur:
                if commands:
                    await cur.execute(DECIDED, (commands,))
                    for (command_id,) in await cur.fetchall():
                        for future in self._commands.get(command_id, ()):
                            _wake(future)
                if self._positions:
                    await cur.execute(CHECKPOINTS)
                    for topic, partition, next_offset in await cur.fetchall():
                        for future, offset in self._positions.get((topic, partition), {}).items():
                            if next_offset > offset:
                                _wake(future)
        except Exception as exc:  # Postgres away: the reads answer stale at their deadline
            if not self._failing:
                log.warning("waiting reads cannot check the read model: %r", exc)
            self._failing = True
        else:
            self._failing = False

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with suppress(asyncio.CancelledError):
                await self._poller


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
