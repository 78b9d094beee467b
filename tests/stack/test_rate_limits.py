"""The token buckets against the stack's real Redis: burst, refill, the tightest bucket, and a
refusal taking nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from aion.settings import Settings
from aion.stack.manager import Stack
from api.rate_limits import Bucket, RateLimiter, Verdict


def run(settings: Settings, body: Callable[[RateLimiter], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        redis = Redis.from_url(settings.redis)
        try:
            return await body(RateLimiter(redis, prefix=f"test:{uuid.uuid4().hex}:"))
        finally:
            await redis.aclose()

    return asyncio.run(main())


def test_a_burst_then_refusal_then_refill(stack: Stack, settings: Settings) -> None:
    bucket = Bucket("key:k", rate_per_s=20, burst=3)

    async def body(limiter: RateLimiter) -> tuple[list[Verdict], Verdict]:
        burst = [await limiter.take([bucket]) for _ in range(4)]
        await asyncio.sleep(0.2)  # 20/s: four tokens come back (capped at the burst of 3)
        return burst, await limiter.take([bucket])

    burst, later = run(settings, body)
    assert [v.allowed for v in burst] == [True, True, True, False]
    assert [v.remaining for v in burst[:3]] == [2, 1, 0]
    assert burst[3].retry_after_s == 1 and burst[3].headers()["Retry-After"] == "1"
    assert later.allowed


def test_a_refusal_takes_nothing_from_the_other_bucket(stack: Stack, settings: Settings) -> None:
    tenant = Bucket("tenant:t", rate_per_s=0.001, burst=5)
    tight = Bucket("key:a", rate_per_s=0.001, burst=1)
    roomy = Bucket("key:b", rate_per_s=0.001, burst=100)

    async def body(limiter: RateLimiter) -> list[Verdict]:
        return [
            await limiter.take([tenant, tight]),  # takes one from each
            await limiter.take([tenant, tight]),  # refused: the tenant keeps its 4
            await limiter.take([tenant, roomy]),
            await limiter.take([tenant, roomy]),
            await limiter.take([tenant, roomy]),
            await limiter.take([tenant, roomy]),  # the tenant's fifth and last
            await limiter.take([tenant, roomy]),  # refused by the tenant's bucket
        ]

    verdicts = run(settings, body)
    assert [v.allowed for v in verdicts] == [True, False, True, True, True, True, False]
    assert verdicts[1].bucket == tight
    assert verdicts[6].bucket == tenant and verdicts[6].retry_after_s > 100
    assert verdicts[5].headers()["RateLimit-Limit"] == "5"  # the tightest bucket is described


def test_a_busy_caller_spends_a_local_lease_and_redis_sees_it_taken(
    stack: Stack, settings: Settings
) -> None:
    bucket = Bucket("key:busy", rate_per_s=1000, burst=1000)  # a lease of 50 tokens

    async def body(limiter: RateLimiter) -> tuple[list[Verdict], float]:
        verdicts = [await limiter.take([bucket])]
        stored = await limiter.redis.hget(f"{limiter.prefix}key:busy", "tokens")
        verdicts += [await limiter.take([bucket]) for _ in range(49)]
        after = await limiter.redis.hget(f"{limiter.prefix}key:busy", "tokens")
        assert after == stored  # 49 more requests, no round trip: the lease paid for them
        return verdicts, float(stored)

    verdicts, stored = run(settings, body)
    assert all(v.allowed for v in verdicts)
    assert 949 <= stored <= 951  # the whole lease was taken at once
    assert verdicts[-1].remaining <= verdicts[1].remaining


def test_a_slow_bucket_is_exact_to_the_last_token(stack: Stack, settings: Settings) -> None:
    bucket = Bucket("key:edge", rate_per_s=0.001, burst=40)  # slow: leases of one token

    async def body(limiter: RateLimiter) -> list[bool]:
        return [(await limiter.take([bucket])).allowed for _ in range(45)]

    allowed = run(settings, body)
    assert allowed.count(True) == 40 and allowed[40:] == [False] * 5


def test_requests_in_flight_share_one_lease_request(stack: Stack, settings: Settings) -> None:
    """Fifty concurrent requests when no lease is held: one asks Redis, the rest spend its
    lease (the bucket is charged once, for the lease), and none is refused."""
    bucket = Bucket("key:herd", rate_per_s=1000, burst=1000)  # a lease of 50 tokens

    async def body(limiter: RateLimiter) -> tuple[list[Verdict], float]:
        verdicts = await asyncio.gather(*(limiter.take([bucket]) for _ in range(50)))
        stored = await limiter.redis.hget(f"{limiter.prefix}key:herd", "tokens")
        return list(verdicts), float(stored)

    verdicts, stored = run(settings, body)
    assert all(v.allowed for v in verdicts)
    assert 949 <= stored <= 951  # one lease of 50, not fifty round trips' worth


def test_waiting_requests_share_a_refusal_and_a_failure(stack: Stack, settings: Settings) -> None:
    empty = Bucket("key:empty", rate_per_s=0.001, burst=1)

    async def refused(limiter: RateLimiter) -> list[Verdict]:
        await limiter.take([empty])  # the only token
        return list(await asyncio.gather(*(limiter.take([empty]) for _ in range(10))))

    verdicts = run(settings, refused)
    assert [v.allowed for v in verdicts] == [False] * 10
    assert all(v.retry_after_s > 100 for v in verdicts)

    async def failing() -> list[BaseException | Verdict]:
        redis = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens there
        try:
            limiter = RateLimiter(redis, prefix="test:down:")
            return list(
                await asyncio.gather(
                    *(limiter.take([empty]) for _ in range(5)), return_exceptions=True
                )
            )
        finally:
            await redis.aclose()

    outcomes = asyncio.run(failing())
    assert all(isinstance(o, Exception) for o in outcomes)  # every waiter gets the error
