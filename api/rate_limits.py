"""Token buckets in Redis: one per tenant and one per caller (token subject or API key).

One Lua script takes a token from every bucket of a request atomically, with Redis's own clock,
so API replicas share the buckets and never disagree about time. A refused request takes
nothing from any bucket. Headers follow the IETF RateLimit draft (``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset``) plus ``Retry-After`` on a 429.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

# KEYS: bucket keys. ARGV: for each bucket rate (tokens/s) and burst, in KEYS order.
# A bucket is a hash {tokens, at_us}. The tightest bucket is the one with the fewest tokens
# (every request takes one from each, so it runs out first). Returns {allowed, its level,
# micro-seconds until it holds a token again, its index}.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local levels = {}
local allowed = 1
local tightest, tightest_level = 1, math.huge
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 'tokens', 'at_us')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + (now - at) * rate / 1000000)
  levels[i] = tokens
  if tokens < 1 then allowed = 0 end
  if tokens < tightest_level then tightest, tightest_level = i, tokens end
end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tokens = levels[i]
  if allowed == 1 then tokens = tokens - 1 end
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

    async def take(self, buckets: list[Bucket]) -> Verdict:
        """Take one token from every bucket, or none when any is empty."""
        keys = [self.prefix + b.key for b in buckets]
        args: list[float | int] = []
        for b in buckets:
            args += [b.rate_per_s, b.burst]
        allowed, level, wait_us, index = await self._script(keys=keys, args=args)
        tightest = buckets[int(index) - 1]
        remaining = max(0, math.floor(float(level)))
        retry = math.ceil(int(wait_us) / 1_000_000) if not int(allowed) else 0
        return Verdict(bool(int(allowed)), tightest, remaining, max(retry, 0 if allowed else 1))
