"""The tenants read model (tenants and their users).

Version-guarded: each statement applies only when the event's aggregate version is newer than
the row's, so a duplicate or a replayed older event changes nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from projections.runner import Position
from schemas.topics import events_topic

# Bumps the tenant's version; the other statements run only when this one matched a row.
ADVANCE = (
    "update tenants set version = %(version)s, updated_at = %(at)s, last_event_id = %(event_id)s"
    " where tenant_id = %(tenant)s and version < %(version)s"
)


class TenantsProjection:
    name = "tenants"
    topics: tuple[str, ...] = (events_topic("tenant"),)

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        env = value["envelope"]
        kind = record_name.rsplit(".", 1)[-1]
        params = {
            "tenant": env["aggregate_id"],
            "version": env["aggregate_version"],
            "at": env["occurred_at"],
            "event_id": env["event_id"],
        }
        if kind == "TenantCreated":
            cur.execute(
                "insert into tenants (tenant_id, display_name, labels, limits, status, version,"
                " created_at, updated_at, last_event_id) values (%(tenant)s, %(name)s,"
                " %(labels)s, %(limits)s, 'active', %(version)s, %(at)s, %(at)s, %(event_id)s)"
                " on conflict (tenant_id) do nothing",
                {
                    **params,
                    "name": value["display_name"],
                    "labels": Jsonb(value["labels"]),
                    "limits": Jsonb(value.get("limits") or {}),
                },
            )
            return
        if kind not in MEMBER_EVENTS and kind not in STATUS_EVENTS:
            return
        cur.execute(ADVANCE, params)
        if cur.rowcount == 0:
            return  # a duplicate or older event: already applied
        if kind in STATUS_EVENTS:
            status, reason = STATUS_EVENTS[kind], value.get("reason")
            cur.execute(
                "update tenants set status = %s, suspension_reason = %s where tenant_id = %s",
                (status, reason if status == "suspended" else None, params["tenant"]),
            )
        else:
            MEMBER_EVENTS[kind](cur, params["tenant"], value, env)


def _user_added(cur: psycopg.Cursor[Any], tenant: str, value: dict[str, Any], env: Any) -> None:
    cur.execute(
        "insert into tenant_users (tenant_id, user_id, display_name, roles, added_at)"
        " values (%s, %s, %s, %s, %s) on conflict do nothing",
        (tenant, value["user_id"], value["display_name"], value["roles"], env["occurred_at"]),
    )


def _roles(cur: psycopg.Cursor[Any], tenant: str, value: dict[str, Any], env: Any) -> None:
    cur.execute(
        "update tenant_users set roles = %s where tenant_id = %s and user_id = %s",
        (value["roles"], tenant, value["user_id"]),
    )


def _removed(cur: psycopg.Cursor[Any], tenant: str, value: dict[str, Any], env: Any) -> None:
    cur.execute(
        "delete from tenant_users where tenant_id = %s and user_id = %s", (tenant, value["user_id"])
    )


STATUS_EVENTS = {"TenantSuspended": "suspended", "TenantReinstated": "active"}
MEMBER_EVENTS = {"UserAdded": _user_added, "RolesAssigned": _roles, "UserRemoved": _removed}
