"""`Idempotency-Key`: a retried command returns its first response and produces nothing new.

The key is scoped to the tenant. The first request claims it in Redis (SET NX) with a hash of
what it asks; the command id is derived from the key, so even a command produced twice (an API
crash between produce and record) is the same command to the decider, which skips repeats.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from api.problems import Problem

KEY_TTL_SECONDS = 24 * 3600
COMMAND_ID_NAMESPACE = uuid.UUID("0b7e2c4a-9f51-4c1e-8d2a-6a3f1e5b7c90")
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Claim:
    command_id: str
    first: bool  # True: this request owns the key and must produce
    stored: dict[str, Any] | None  # the first response, when it has been recorded


def command_id_for(tenant_id: str, key: str) -> str:
    return str(uuid.uuid5(COMMAND_ID_NAMESPACE, f"{tenant_id}/{key}"))


def fingerprint(method: str, path: str, payload: dict[str, Any], expected: int | None) -> str:
    canonical = json.dumps([method, path, payload, expected], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _redis_key(tenant_id: str, key: str) -> str:
    return f"aion:{tenant_id}:idempotency:{key}"


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Problem(
            400,
            "invalid-header",
            "Invalid Idempotency-Key",
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
            field="Idempotency-Key",
        )


async def claim(redis: Redis, tenant_id: str, key: str, digest: str) -> Claim:
    check_key(key)
    command_id = command_id_for(tenant_id, key)
    record = json.dumps({"digest": digest, "command_id": command_id, "response": None})
    if await redis.set(_redis_key(tenant_id, key), record, nx=True, ex=KEY_TTL_SECONDS):
        return Claim(command_id, True, None)
    raw = await redis.get(_redis_key(tenant_id, key))
    if raw is None:  # expired between the two calls: claim again
        return await claim(redis, tenant_id, key, digest)
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
    return Claim(existing["command_id"], False, existing["response"])


async def record(
    redis: Redis, tenant_id: str, key: str, digest: str, response: dict[str, Any]
) -> None:
    """Store the first response so that replays return it."""
    value = json.dumps(
        {"digest": digest, "command_id": command_id_for(tenant_id, key), "response": response}
    )
    await redis.set(_redis_key(tenant_id, key), value, ex=KEY_TTL_SECONDS)


async def release(redis: Redis, tenant_id: str, key: str) -> None:
    """Forget a claim whose command never reached Kafka, so that a retry can try again."""
    await redis.delete(_redis_key(tenant_id, key))
