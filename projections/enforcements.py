"""The enforcements read model: every Cedar verdict, with the policies that decided it.

An enforcement is written once (each EnforcementDecided is its own aggregate at version 1):
the enforcement id is the key, so a duplicate insert does nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from commands.agent import strict_json
from commands.enforcement import DECIDED
from projections.runner import Position
from projections.storable import storable
from schemas.topics import events_topic


class EnforcementsProjection:
    name = "enforcements"
    topics: tuple[str, ...] = (events_topic("enforcement"),)

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        env = value["envelope"]
        if record_name != DECIDED or env["aggregate_type"] != "enforcement":
            return
        value = storable(value)
        tenant = env["tenant_id"]
        cur.execute(
            "insert into enforcements (tenant_id, enforcement_id, subject_type, subject_id,"
            " action, decision, policy_ids, diagnostics, request, decided_at)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) on conflict do nothing",
            (
                tenant,
                value["enforcement_id"],
                value["subject_type"],
                value["subject_id"].removeprefix(f"{tenant}/"),
                value["action"],
                value["decision"],
                list(value.get("policy_ids") or []),
                list(value.get("diagnostics") or []),
                _request(value.get("request") or ""),
                env["occurred_at"],
            ),
        )


def _request(text: str) -> Jsonb | None:
    """The recorded Cedar request as jsonb; None when there is none or it is not JSON (which
    must not stop the projection)."""
    try:
        return Jsonb(storable(strict_json(text))) if text else None
    except ValueError:
        return None
