"""`Idempotency-Key`: a retried command returns its first response and produces nothing new.

The key is scoped to the tenant. The first request claims it in Redis (SET NX) with a hash of
what it asks and the id of the API process that owns it; the command id is derived from the
key, so even a command produced twice is the same command to the decider, which skips repeats.

A claim moves through three states: claimed (the owner is producing), produced (its Kafka
position is recorded) and answered (the first response is recorded). A retry of an answered
claim gets that response; of a produced one, 202 with the position. A retry of a claim still
being produced waits a little for it, then gets 409 with ``Retry-After`` (the IETF draft's
answer to a request in flight). A claim whose owner is gone (its liveness key, refreshed every
1.5 s, has expired: the API was killed between claiming and producing) is taken over by the
retry, atomically, and produced again: without that, a crash there lost the command for good
(issue 16's chaos test).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from api.problems import Problem

KEY_TTL_SECONDS = 24 * 3600
COMMAND_ID_NAMESPACE = uuid.UUID("0b7e2c4a-9f51-4c1e-8d2a-6a3f1e5b7c90")
MAX_KEY_LENGTH = 255
ALIVE_TTL_S = 5  # an owner silent this long is gone
ALIVE_EVERY_S = 1.5
IN_FLIGHT_WAIT_S = 2.0  # how long a retry waits for a live owner to produce
# A claim never produced this long after it was made is taken over even from a live owner: its
# request failed without releasing it (Redis away at that moment, then restored from its append
# log). Taking over re-produces the same command id, which the decider drops if it was sent.
IN_FLIGHT_MAX_S = 30.0
POLL_S = 0.05
RETRY_AFTER_S = 1
# Replace the claim only if it is still exactly what the retry read (no other retry won).
TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Claim:
    command_id: str
    first: bool  # True: this request owns the key and must produce
    stored: dict[str, Any] | None  # the first response, when it has been recorded
    position: dict[str, Any] | None = None  # where the command was produced, once it was


def command_id_for(tenant_id: str, key: str) -> str:
    return str(uuid.uuid5(COMMAND_ID_NAMESPACE, f"{tenant_id}/{key}"))


def fingerprint(method: str, path: str, payload: dict[str, Any], expected: int | None) -> str:
    canonical = json.dumps([method, path, payload, expected], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _redis_key(tenant_id: str, key: str) -> str:
    return f"aion:{tenant_id}:idempotency:{key}"


def _alive_key(owner: str) -> str:
    return f"aion:api:alive:{owner}"


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Problem(
            400,
            "invalid-header",
            "Invalid Idempotency-Key",
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
            field="Idempotency-Key",
        )


class Liveness:
    """This API process's liveness key, by which retries tell a slow owner from a dead one."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.owner = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.redis.set(_alive_key(self.owner), b"1", ex=ALIVE_TTL_S)
        self._task = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(ALIVE_EVERY_S)
            with contextlib.suppress(Exception):  # Redis down: retried at the next beat
                await self.redis.set(_alive_key(self.owner), b"1", ex=ALIVE_TTL_S)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.redis.delete(_alive_key(self.owner))


def _record(
    tenant_id: str,
    key: str,
    digest: str,
    owner: str,
    position: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
) -> str:
    return json.dumps(
        {
            "digest": digest,
            "command_id": command_id_for(tenant_id, key),
            "owner": owner,
            "claimed_at": time.time(),
            "position": position,
            "response": response,
        }
    )


async def claim(redis: Redis, tenant_id: str, key: str, digest: str, owner: str) -> Claim:
    """Own the key, or learn what its owner did; a dead owner's claim is taken over."""
    check_key(key)
    command_id = command_id_for(tenant_id, key)
    name = _redis_key(tenant_id, key)
    mine = _record(tenant_id, key, digest, owner)
    deadline = time.monotonic() + IN_FLIGHT_WAIT_S
    while True:
        if await redis.set(name, mine, nx=True, ex=KEY_TTL_SECONDS):
            return Claim(command_id, True, None)
        raw = await redis.get(name)
        if raw is None:  # expired between the two calls: claim again
            continue
        existing = json.loads(raw)
        if existing["digest"] != digest:
            raise Problem(
                409,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used with a different request",
                field="Idempotency-Key",
                command_id=existing["command_id"],
            )
        if existing.get("response") is not None or existing.get("position") is not None:
            return Claim(
                existing["command_id"], False, existing["response"], existing.get("position")
            )
        stale = time.time() - float(existing.get("claimed_at") or 0) > IN_FLIGHT_MAX_S
        if stale or not await redis.exists(_alive_key(str(existing.get("owner")))):
            won = await redis.eval(TAKE_OVER, 1, name, raw, mine, KEY_TTL_SECONDS)
            if won:
                return Claim(command_id, True, None)
            continue  # another retry took it over first: see what it does
        if time.monotonic() >= deadline:
            raise Problem(
                409,
                "idempotency-key-in-flight",
                "Request in flight",
                "the first request with this Idempotency-Key is still being produced;"
                f" retry after {RETRY_AFTER_S} s with the same key",
                field="Idempotency-Key",
                headers={"Retry-After": str(RETRY_AFTER_S)},
                command_id=existing["command_id"],
            )
        await asyncio.sleep(POLL_S)


async def produced(
    redis: Redis, tenant_id: str, key: str, digest: str, owner: str, position: dict[str, Any]
) -> None:
    """The command is in Kafka: a retry from now on is told where, not asked to wait."""
    value = _record(tenant_id, key, digest, owner, position)
    await redis.set(_redis_key(tenant_id, key), value, ex=KEY_TTL_SECONDS)


async def record(
    redis: Redis,
    tenant_id: str,
    key: str,
    digest: str,
    owner: str,
    position: dict[str, Any],
    response: dict[str, Any],
) -> None:
    """Store the first response so that replays return it."""
    value = _record(tenant_id, key, digest, owner, position, response)
    await redis.set(_redis_key(tenant_id, key), value, ex=KEY_TTL_SECONDS)


async def release(redis: Redis, tenant_id: str, key: str) -> None:
    """Forget a claim whose command never reached Kafka, so that a retry can try again."""
    await redis.delete(_redis_key(tenant_id, key))
