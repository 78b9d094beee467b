"""Refused requests, counted: a few audit entries per caller and window, not one per request.

A 403 used to be one ``aion.audit.AccessDenied`` each, kept forever, in the log of the tenant
the path named: any caller could write into any tenant's log as fast as its rate limit let it
(issue 17, finding 3). Now Redis counts the refusals of each (tenant addressed, caller, action)
in windows of ``AION_AUDIT_DENIAL_WINDOW_S`` (60 s) that open at the first refusal:

- the refusal that opens a window is written at once, with count 1 (one attempt shows up as
  soon as it did before);
- the others of the window are only counted; once the window is over, one entry carries their
  count and the times of the first and the last (``count``, ``first_at``, ``last_at``). The
  API's sweeper writes it; a refusal arriving after the window ended but before the sweeper
  writes it with its own (count n + 1) and opens the next window.

So an aggregate gets at most two entries per window however many requests hit it, and the
counts add up to the refusals. Its tenant and action are the caller's to choose (a path may
name any tenant), so a caller opens at most ``AGGREGATES_PER_CALLER`` aggregates per window
length; past that, its refusals are counted in one overflow aggregate of the caller's own
tenant's log (action ``*``). Nothing counted is dropped: an entry that cannot be produced is
given back to Redis and written with the aggregate's next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from redis.exceptions import RedisError

from api import audit_events
from api.principal import Principal
from api.state import ApiState

log = logging.getLogger("aion.api.denials")

AGGREGATES_PER_CALLER = 20  # aggregates one caller may open per window length
OVERFLOW_ACTION = "*"
PREFIX = "aion:denials:"
DUE = PREFIX + "due"  # sorted set: aggregate key -> when its window ends (ms)
SWEEP_BATCH = 200  # windows closed per Redis listing
KEY_TTL_MS = 86_400_000  # an aggregate no sweeper reached in a day is dropped (memory bound)

# Count one refusal. KEYS: the aggregate, the caller's overflow aggregate, the caller's counter
# of aggregates opened, DUE. ARGV: window ms, aggregates per caller, key ttl ms, the refusal
# (JSON), the overflow's (JSON). An aggregate is a hash {opened, count (refusals not written
# yet), first, last, details}. Returns {written now (0/1), overflow (0/1), count, first, last}.
COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local ttl = tonumber(ARGV[3])
local key, details, overflow = KEYS[1], ARGV[4], 0
if redis.call('EXISTS', key) == 0 then
  local at = tonumber(redis.call('HGET', KEYS[3], 'at'))
  if at == nil or now - at >= window then
    redis.call('HSET', KEYS[3], 'at', now, 'n', 0)
    redis.call('PEXPIRE', KEYS[3], window * 2)
  end
  if redis.call('HINCRBY', KEYS[3], 'n', 1) > tonumber(ARGV[2]) then
    key, details, overflow = KEYS[2], ARGV[5], 1
  end
end
local s = redis.call('HMGET', key, 'opened', 'count', 'first')
local opened, count, first = tonumber(s[1]), tonumber(s[2]) or 0, tonumber(s[3])
if opened ~= nil and now < opened + window then
  redis.call('HINCRBY', key, 'count', 1)
  if first == nil then redis.call('HSET', key, 'first', now) end
  redis.call('HSET', key, 'last', now, 'details', details)
  redis.call('PEXPIRE', key, ttl)
  return {0, overflow, 0, 0, 0}
end
redis.call('DEL', key)
redis.call('HSET', key, 'opened', now, 'count', 0, 'details', details)
redis.call('PEXPIRE', key, ttl)
redis.call('ZADD', KEYS[4], now + window, key)
return {1, overflow, count + 1, first or now, now}
"""

# Close an aggregate whose window is over. KEYS: the aggregate, DUE. ARGV: window ms. Returns
# {} (nothing to write, or not over: it was reopened) or {count, first, last, details}.
CLOSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'opened', 'count', 'first', 'last', 'details')
local opened = tonumber(s[1])
if opened == nil then
  redis.call('ZREM', KEYS[2], KEYS[1])
  return {}
end
if now < opened + tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[2], opened + tonumber(ARGV[1]), KEYS[1])
  return {}
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
if (tonumber(s[2]) or 0) == 0 then return {} end
return {s[2], s[3], s[4], s[5]}
"""

# Give back a count that could not be written. KEYS: the aggregate, DUE. ARGV: count, first,
# last, details (JSON), window ms, key ttl ms. Into the open window, or a closed one that the
# next sweep writes.
GIVE_BACK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count, first, last = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'opened', now - tonumber(ARGV[5]), 'count', count,
             'first', first, 'last', last, 'details', ARGV[4])
  redis.call('ZADD', KEYS[2], now, KEYS[1])
else
  redis.call('HINCRBY', KEYS[1], 'count', count)
  local s = redis.call('HMGET', KEYS[1], 'first', 'last')
  local f, l = tonumber(s[1]), tonumber(s[2])
  if f == nil or first < f then redis.call('HSET', KEYS[1], 'first', first) end
  if l == nil or last > l then redis.call('HSET', KEYS[1], 'last', last) end
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]))
return 1
"""


@dataclass(frozen=True)
class Refusal:
    """One refused request, as its audit entry tells it (for a count: the last one's)."""

    tenant: str  # the tenant the request addressed, or _platform
    subject: str
    via: str
    roles: tuple[str, ...]
    method: str
    path: str
    action: str
    reason: str
    status: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Refusal:
        fields: dict[str, Any] = json.loads(text)
        return cls(**{**fields, "roles": tuple(fields["roles"])})

    def overflow(self, home: str) -> Refusal:
        """The caller's overflow: counted in its own tenant's log once it opened too many."""
        return Refusal(
            home,
            self.subject,
            self.via,
            self.roles,
            self.method,
            self.path,
            OVERFLOW_ACTION,
            f"refused on more than {AGGREGATES_PER_CALLER} tenant and action pairs within one"
            f" window; this entry counts the rest (the last: {self.action}: {self.reason})",
            self.status,
        )


def aggregate_key(refusal: Refusal) -> str:
    """One aggregate per (tenant, caller, action); hashed, as these are anyone's strings."""
    named = json.dumps([refusal.tenant, refusal.subject, refusal.action])
    return f"{PREFIX}agg:{hashlib.sha256(named.encode()).hexdigest()[:32]}"


def caller_key(subject: str) -> str:
    return f"{PREFIX}caller:{hashlib.sha256(subject.encode()).hexdigest()[:32]}"


def sweep_interval_s(window_s: float) -> float:
    """How often the sweeper looks: a quarter window, within [0.2 s, 5 s]."""
    return min(5.0, max(0.2, window_s / 4))


class DenialLog:
    """Counts refusals in Redis and writes them to the audit log as counted entries."""

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self.window_s = state.settings.audit_denial_window_s
        self.window_ms = max(1, round(self.window_s * 1000))
        self.ttl_ms = max(KEY_TTL_MS, 10 * self.window_ms)
        self._count: Any = state.redis.register_script(COUNT)
        self._close: Any = state.redis.register_script(CLOSE)
        self._give_back: Any = state.redis.register_script(GIVE_BACK)
        self._sweeper: asyncio.Task[None] | None = None

    async def refused(self, principal: Principal, refusal: Refusal) -> None:
        """Count one refusal; write an entry when it opens a window. Raises when writing
        fails (the count is kept for the next entry)."""
        overflow = refusal.overflow(principal.tenant or audit_events.PLATFORM)
        keys = [aggregate_key(refusal), aggregate_key(overflow), caller_key(refusal.subject), DUE]
        args = [
            self.window_ms,
            AGGREGATES_PER_CALLER,
            self.ttl_ms,
            refusal.to_json(),
            overflow.to_json(),
        ]
        try:
            written, over, count, first, last = await self._count(keys=keys, args=args)
        except RedisError:
            # Without Redis nothing is counted: the refusal is written alone (the rate limiter
            # needs Redis too, so this cannot become a flood).
            log.warning("denials cannot be counted (Redis); written one by one", exc_info=True)
            await self.write(refusal, 1, None, None)
            return
        if int(written):
            chosen, key = (overflow, keys[1]) if int(over) else (refusal, keys[0])
            await self.write_or_give_back(chosen, key, int(count), int(first), int(last))

    async def write(
        self, refusal: Refusal, count: int, first_ms: int | None, last_ms: int | None
    ) -> None:
        caller = Principal(refusal.subject, None, frozenset(refusal.roles), via=refusal.via)
        await audit_events.access_denied(
            self.state,
            caller,
            refusal.tenant,
            refusal.action,
            refusal.method,
            refusal.path,
            refusal.reason,
            refusal.status,
            count=count,
            first_ms=first_ms,
            last_ms=last_ms,
        )

    async def write_or_give_back(
        self, refusal: Refusal, key: str, count: int, first_ms: int, last_ms: int
    ) -> None:
        try:
            await self.write(refusal, count, first_ms, last_ms)
        except Exception:
            args = [count, first_ms, last_ms, refusal.to_json(), self.window_ms, self.ttl_ms]
            await self._give_back(keys=[key, DUE], args=args)
            raise

    async def sweep(self) -> int:
        """Write the count of every window that is over; returns the entries written."""
        written = 0
        while True:
            seconds, micros = await self.state.redis.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            due = await self.state.redis.zrangebyscore(DUE, "-inf", now_ms, 0, SWEEP_BATCH)
            for member in due:
                key = member.decode() if isinstance(member, bytes) else str(member)
                closed = await self._close(keys=[key, DUE], args=[self.window_ms])
                if not closed:
                    continue
                count, first, last, details = closed
                refusal = Refusal.from_json(details)
                await self.write_or_give_back(refusal, key, int(count), int(first), int(last))
                written += 1
            if len(due) < SWEEP_BATCH:
                return written

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(sweep_interval_s(self.window_s))
            try:
                await self.sweep()
            except Exception:  # Redis or Kafka away: the counts wait in Redis for the next
                log.exception("closing the windows of refused requests failed; will retry")

    def start(self) -> None:
        """Sweep in the background, for as long as the API runs (each replica does; a window
        is closed by exactly one, atomically in Redis)."""
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="denial-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
