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
# A policy's denial is the outcome of DeployAgent/UpdateAgent and SubmitTask: a 403 to a caller
# who waits. (The denied task still exists, in status rejected.)
DENIALS = frozenset({"aion.agent.AgentDeploymentRejected", "aion.task.TaskRejected"})


class CommandOutcomesProjection:
    name = "command_outcomes"
    topics: tuple[str, ...] = tuple(t.name for t in TOPICS if t.name.startswith("aion.events."))

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        env = value["envelope"]
        if not env.get("command_outcome", True):
            return  # a consequence on another aggregate, not what the command itself became
        rejected = record_name == REJECTED
        denied = record_name in DENIALS
        cur.execute(
            "insert into command_outcomes (command_id, command_type, tenant_id, aggregate_type,"
            " aggregate_id, status, code, reason, field, aggregate_version, event_ids, topic,"
            ' partition, "offset", decided_at)'
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, array[%s], %s, %s, %s, %s)"
            " on conflict (command_id) do update set"
            " event_ids = command_outcomes.event_ids || excluded.event_ids,"
            " aggregate_version = greatest(command_outcomes.aggregate_version,"
            " excluded.aggregate_version),"
            " status = case when excluded.status = 'rejected' then 'rejected'"
            " else command_outcomes.status end,"
            " code = coalesce(excluded.code, command_outcomes.code),"
            " reason = coalesce(excluded.reason, command_outcomes.reason)"
            " where not (excluded.event_ids[1] = any(command_outcomes.event_ids))",
            (
                env["command_id"],
                value.get("command_type") if rejected else None,
                env["tenant_id"],
                env["aggregate_type"],
                env["aggregate_id"],
                "rejected" if rejected or denied else "accepted",
                "forbidden" if denied else value.get("code"),
                value.get("reason") if rejected or denied else None,
                value.get("field") if rejected or denied else None,
                env["aggregate_version"],
                env["event_id"],
                at.topic,
                at.partition,
                at.offset,
                env["occurred_at"],
            ),
        )
