"""The tenants read model. Version-guarded: a duplicate or older event changes nothing."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from projections.runner import Position
from schemas.topics import events_topic


class TenantsProjection:
    name = "tenants"
    topics: tuple[str, ...] = (events_topic("tenant"),)

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        if record_name != "aion.tenant.TenantCreated":
            return
        env = value["envelope"]
        cur.execute(
            "insert into tenants (tenant_id, display_name, labels, status, version, created_at,"
            " updated_at, last_event_id) values (%s, %s, %s, 'active', %s, %s, %s, %s)"
            " on conflict (tenant_id) do nothing",
            (
                value["tenant_id"],
                value["display_name"],
                Jsonb(value["labels"]),
                env["aggregate_version"],
                env["occurred_at"],
                env["occurred_at"],
                env["event_id"],
            ),
        )
