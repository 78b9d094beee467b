"""The API keys read model: what the API checks a presented key against.

Version-guarded like the other entity models: a duplicate or older event changes nothing. A
revoked key keeps its row (status ``revoked``) so that its id is never reused silently.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from commands.api_key import CREATED, REVOKED
from projections.bulk import BatchPart, Rows
from projections.runner import Delivered
from projections.storable import storable
from schemas.topics import events_topic

COLUMNS = ("tenant_id", "status", "revoked_reason", "version", "updated_at")


class ApiKeysProjection(BatchPart):
    name = "api_keys"
    topics: tuple[str, ...] = (events_topic("api_key"),)

    def steps(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> Iterator[None]:
        events = [
            (name, storable(value))
            for name, value, _ in batch
            if name in (CREATED, REVOKED) and value["envelope"]["aggregate_type"] == "api_key"
        ]
        keys = Rows("api_keys", ("key_id",), COLUMNS)
        keys.load(cur, ("key_id",), {(v["key_id"],) for _, v in events})
        yield
        for name, value in events:
            fold(keys, name, value)
        keys.flush(cur)


def fold(keys: Rows, name: str, value: dict[str, Any]) -> None:
    """A creation makes the row once; a revocation marks an older version of the tenant's key."""
    env = value["envelope"]
    version, at = env["aggregate_version"], env["occurred_at"]
    row = keys.get((value["key_id"],))
    if name == REVOKED:
        if row is not None and row["tenant_id"] == env["tenant_id"] and row["version"] < version:
            row.update(status="revoked", revoked_reason=value.get("reason") or "")
            row.update(version=version, updated_at=at)
        return
    if row is None:
        keys.put(
            {
                "tenant_id": env["tenant_id"],
                "key_id": value["key_id"],
                "name": value["name"],
                "roles": list(value["roles"]),
                "secret_sha256": value["secret_sha256"],
                "rate_per_s": value.get("rate_per_s"),
                "burst": value.get("burst"),
                "expires_at": value.get("expires_at"),
                "status": "active",
                "created_by": env["actor"],
                "version": version,
                "created_at": at,
                "updated_at": at,
            }
        )
