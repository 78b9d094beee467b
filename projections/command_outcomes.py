"""What became of each command: accepted (with its events) or rejected (with the reason).

Read by `GET /v1/commands/{id}` and by `Prefer: wait`. Idempotent: an event id already
recorded changes nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg

from projections.runner import Position
from schemas.topics import TOPICS

REJECTED = "aion.CommandRejected"


class CommandOutcomesProjection:
    name = "command_outcomes"
    topics: tuple[str, ...] = tuple(t.name for t in TOPICS if t.name.startswith("aion.events."))

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        env = value["envelope"]
        rejected = record_name == REJECTED
        cur.execute(
            "insert into command_outcomes (command_id, command_type, tenant_id, aggregate_type,"
            " aggregate_id, status, code, reason, field, aggregate_version, event_ids, topic,"
            ' partition, "offset", decided_at)'
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, array[%s], %s, %s, %s, %s)"
            " on conflict (command_id) do update set"
            " event_ids = command_outcomes.event_ids || excluded.event_ids,"
            " aggregate_version = greatest(command_outcomes.aggregate_version,"
            " excluded.aggregate_version)"
            " where not (excluded.event_ids[1] = any(command_outcomes.event_ids))",
            (
                env["command_id"],
                value.get("command_type") if rejected else None,
                env["tenant_id"],
                env["aggregate_type"],
                env["aggregate_id"],
                "rejected" if rejected else "accepted",
                value.get("code"),
                value.get("reason"),
                value.get("field"),
                env["aggregate_version"],
                env["event_id"],
                at.topic,
                at.partition,
                at.offset,
                env["occurred_at"],
            ),
        )
