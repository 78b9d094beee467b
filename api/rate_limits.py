"""Token buckets in Redis: one per tenant and one per caller (token subject or API key).

One Lua script takes tokens from every bucket of a request atomically, with Redis's own clock,
so API replicas share the buckets and never disagree about time. A refused request takes
nothing from any bucket. Headers follow the IETF RateLimit draft (``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset``) plus ``Retry-After`` on a 429.

Leases: a busy caller does not cost a Redis round trip per request. When a pair of buckets has
room, the script hands this process a small lease (50 ms of the slower bucket's rate, at most
5% of its burst) that the process spends locally for up to ``LEASE_S``; a lease of one token
is what a slow or nearly empty bucket gets, so low limits stay exact (decision 40). Tokens of a
lease that expires unspent are lost, as if spent: never more than the lease size per caller.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

# KEYS: bucket keys. ARGV: for each bucket rate (tokens/s) and burst, in KEYS order, then the
# tokens wanted (a lease). A bucket is a hash {tokens, at_us}. Every bucket gives the lease if
# all can, else one token if all can, else nothing. The tightest bucket is the one with the
# fewest tokens (it runs out first). Returns {tokens granted, the tightest bucket's level,
# micro-seconds until it holds a token again, its index}.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local levels = {}
local wanted = tonumber(ARGV[2 * #KEYS + 1])
local allowed = wanted
local tightest, tightest_level = 1, math.huge
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 'tokens', 'at_us')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + (now - at) * rate / 1000000)
  levels[i] = tokens
  if tokens < allowed then allowed = 1 end
  if tokens < 1 then allowed = 0 end
  if tokens < tightest_level then tightest, tightest_level = i, tokens end
end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tokens = levels[i]
  tokens = tokens - allowed
  levels[i] = tokens
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at_us', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
end
local rate = tonumber(ARGV[2 * tightest - 1])
local wait = 0
if levels[tightest] < 1 then wait = math.ceil((1 - levels[tightest]) / rate * 1000000) end
return {allowed, tostring(levels[tightest]), wait, tightest}
"""


@dataclass(frozen=True)
class Bucket:
    key: str  # e.g. "tenant:acme" or "key:0123456789abcdef"
    rate_per_s: float
    burst: int


LEASE_S = 1.0
LEASE_SHARE_OF_RATE_S = 0.05  # a lease is 50 ms of the slower bucket's rate
LEASE_SHARE_OF_BURST = 0.05  # and at most 5% of the smaller burst


def lease_size(buckets: list[Bucket]) -> int:
    rate = min(b.rate_per_s for b in buckets)
    burst = min(b.burst for b in buckets)
    return max(1, min(int(rate * LEASE_SHARE_OF_RATE_S), int(burst * LEASE_SHARE_OF_BURST)))


@dataclass
class Lease:
    tokens: int
    level: float  # the tightest bucket's level when the lease was granted, after it
    tightest: Bucket
    until: float  # monotonic


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    bucket: Bucket  # the tightest bucket: the one the headers describe
    remaining: int
    retry_after_s: int  # 0 when allowed

    def headers(self) -> dict[str, str]:
        """RateLimit headers of the tightest bucket (and Retry-After when refused)."""
        b = self.bucket
        refill_s = math.ceil(max(0, b.burst - self.remaining) / b.rate_per_s)
        found = {
            "RateLimit-Limit": str(b.burst),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.retry_after_s if not self.allowed else refill_s),
            "RateLimit-Policy": f"{b.burst};w={max(1, math.ceil(b.burst / b.rate_per_s))}",
        }
        if not self.allowed:
            found["Retry-After"] = str(self.retry_after_s)
        return found


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str = "aion:rate:") -> None:
        self.redis = redis
        self.prefix = prefix
        self._script: Any = redis.register_script(TAKE)
        self._leases: dict[tuple[Bucket, ...], Lease] = {}
        self._asking: dict[tuple[Bucket, ...], asyncio.Future[Verdict]] = {}

    async def take(self, buckets: list[Bucket]) -> Verdict:
        """Take one token from every bucket, or none when any is empty.

        One request at a time asks Redis for a pair's next lease; the others wait for its
        answer, then spend the lease (or share a refusal: the buckets were empty a moment ago).
        Without this, every request in flight when a lease ran out asked Redis for its own.
        """
        lease_key = tuple(buckets)
        while True:
            verdict = self._spend(lease_key)
            if verdict is not None:
                return verdict
            asking = self._asking.get(lease_key)
            if asking is None:
                break
            answer = await asyncio.shield(asking)
            if not answer.allowed:
                return answer
        asking = asyncio.get_running_loop().create_future()
        self._asking[lease_key] = asking
        try:
            answer = await self._ask(buckets, lease_key)
            asking.set_result(answer)
            return answer
        except BaseException as exc:
            asking.set_exception(exc)
            asking.exception()  # retrieved: a failure with no one waiting is not "unhandled"
            raise
        finally:
            del self._asking[lease_key]

    def _spend(self, lease_key: tuple[Bucket, ...]) -> Verdict | None:
        lease = self._leases.get(lease_key)
        if lease is None or lease.tokens <= 0 or time.monotonic() >= lease.until:
            return None
        lease.tokens -= 1
        remaining = max(0, math.floor(lease.level + lease.tokens))
        return Verdict(True, lease.tightest, remaining, 0)

    async def _ask(self, buckets: list[Bucket], lease_key: tuple[Bucket, ...]) -> Verdict:
        now = time.monotonic()
        keys = [self.prefix + b.key for b in buckets]
        args: list[float | int] = []
        for b in buckets:
            args += [b.rate_per_s, b.burst]
        args.append(lease_size(buckets))
        granted, level, wait_us, index = await self._script(keys=keys, args=args)
        granted = int(granted)
        tightest = buckets[int(index) - 1]
        if granted > 1:
            self._leases[lease_key] = Lease(granted - 1, float(level), tightest, now + LEASE_S)
            if len(self._leases) > 10_000:
                self._leases.pop(next(iter(self._leases)))
        else:
            self._leases.pop(lease_key, None)
        remaining = max(0, math.floor(float(level)))
        retry = math.ceil(int(wait_us) / 1_000_000) if not granted else 0
        return Verdict(granted > 0, tightest, remaining, max(retry, 0 if granted else 1))
