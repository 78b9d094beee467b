"""The tenants read model (tenants and their users).

Version-guarded: a member or status event applies only when the event's aggregate version is
newer than the tenant row's, so a duplicate or a replayed older event changes nothing; a
TenantCreated for a tenant that exists changes nothing either.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from projections.bulk import BatchPart, Row, Rows
from projections.runner import Delivered
from schemas.topics import events_topic

STATUS_EVENTS = {"TenantSuspended": "suspended", "TenantReinstated": "active"}
MEMBER_EVENTS = frozenset({"UserAdded", "RolesAssigned", "UserRemoved"})
KINDS = frozenset({"TenantCreated", *STATUS_EVENTS, *MEMBER_EVENTS})


class TenantsProjection(BatchPart):
    name = "tenants"
    topics: tuple[str, ...] = (events_topic("tenant"),)

    def steps(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> Iterator[None]:
        events = [(n.rsplit(".", 1)[-1], v) for n, v, _ in batch]
        events = [(kind, v) for kind, v in events if kind in KINDS]
        tenants = Rows(
            "tenants",
            ("tenant_id",),
            ("version", "updated_at", "last_event_id", "status", "suspension_reason"),
        )
        users = Rows(
            "tenant_users",
            ("tenant_id", "user_id"),
            ("display_name", "roles", "added_at"),
            versioned=False,
        )
        tenants.load(cur, ("tenant_id",), {(v["envelope"]["aggregate_id"],) for _, v in events})
        members = {(v["envelope"]["aggregate_id"],) for k, v in events if k in MEMBER_EVENTS}
        users.load(cur, ("tenant_id",), members)
        yield
        for kind, value in events:
            fold(tenants, users, kind, value)
        tenants.flush(cur)  # first: users refer to their tenant
        users.flush(cur)


def fold(tenants: Rows, users: Rows, kind: str, value: dict[str, Any]) -> None:
    """Apply one tenant event to the rows, if it is new to them."""
    env = value["envelope"]
    tenant, version, at = env["aggregate_id"], env["aggregate_version"], env["occurred_at"]
    row = tenants.get((tenant,))
    if kind == "TenantCreated":
        if row is None:
            tenants.put(
                {
                    "tenant_id": tenant,
                    "display_name": value["display_name"],
                    "labels": value["labels"],
                    "limits": value.get("limits") or {},
                    "status": "active",
                    "version": version,
                    "created_at": at,
                    "updated_at": at,
                    "last_event_id": env["event_id"],
                }
            )
        return
    if row is None or row["version"] >= version:
        return  # a duplicate or older event: already applied (or no such tenant)
    row.update(version=version, updated_at=at, last_event_id=env["event_id"])
    if kind in STATUS_EVENTS:
        row["status"] = STATUS_EVENTS[kind]
        row["suspension_reason"] = value.get("reason") if row["status"] == "suspended" else None
        return
    key = (tenant, value["user_id"])
    user: Row | None = users.get(key)
    if kind == "UserAdded" and user is None:
        users.put(
            {
                "tenant_id": tenant,
                "user_id": value["user_id"],
                "display_name": value["display_name"],
                "roles": list(value["roles"]),
                "added_at": at,
            }
        )
    elif kind == "RolesAssigned" and user is not None:
        user["roles"] = list(value["roles"])
    elif kind == "UserRemoved":
        users.delete(key)
