"""What became of each command: accepted (with its events) or rejected (with the reason).

Read by `GET /v1/commands/{id}` and by `Prefer: wait`. Idempotent: an event id already
recorded changes nothing. A command's outcome may take several events (a submitted task and
its denial), which may arrive in different batches: each says how many there are
(``outcome_events``), and readers take an outcome as decided only once all have been folded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from projections.bulk import BatchPart, Rows
from projections.runner import Delivered, Position
from schemas.topics import EVENTS_PREFIX, TOPICS

REJECTED = "aion.CommandRejected"
# A policy's denial is the outcome of DeployAgent/UpdateAgent and SubmitTask: a 403 to a caller
# who waits. (The denied task still exists, in status rejected.)
DENIALS = frozenset({"aion.agent.AgentDeploymentRejected", "aion.task.TaskRejected"})
# What a later event of the same command may change.
COLUMNS = ("event_ids", "aggregate_version", "status", "code", "reason")


class CommandOutcomesProjection(BatchPart):
    name = "command_outcomes"
    topics: tuple[str, ...] = tuple(t.name for t in TOPICS if t.name.startswith(EVENTS_PREFIX))

    def steps(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> Iterator[None]:
        # A consequence on another aggregate is not what the command itself became.
        mine = [d for d in batch if d[1]["envelope"].get("command_outcome", True)]
        outcomes = Rows("command_outcomes", ("command_id",), COLUMNS, versioned=False)
        outcomes.load(cur, ("command_id",), {(v["envelope"]["command_id"],) for _, v, _ in mine})
        yield
        for name, value, at in mine:
            record(outcomes, name, value, at)
        outcomes.flush(cur)


def record(outcomes: Rows, record_name: str, value: dict[str, Any], at: Position) -> None:
    """Fold one event into its command's outcome: the first event makes the row, later ones
    add their ids (an id already there changes nothing); a rejection wins over acceptance."""
    env = value["envelope"]
    rejected = record_name == REJECTED
    denied = record_name in DENIALS
    status = "rejected" if rejected or denied else "accepted"
    code = "forbidden" if denied else value.get("code")
    reason = value.get("reason") if rejected or denied else None
    row = outcomes.get((env["command_id"],))
    if row is None:
        outcomes.put(
            {
                "command_id": env["command_id"],
                "command_type": value.get("command_type") if rejected else None,
                "tenant_id": env["tenant_id"],
                "aggregate_type": env["aggregate_type"],
                "aggregate_id": env["aggregate_id"],
                "status": status,
                "code": code,
                "reason": reason,
                "field": value.get("field") if rejected or denied else None,
                "aggregate_version": env["aggregate_version"],
                "event_ids": [env["event_id"]],
                "outcome_events": env.get("outcome_events", 0),
                "topic": at.topic,
                "partition": at.partition,
                "offset": at.offset,
                "decided_at": env["occurred_at"],
            }
        )
    elif env["event_id"] not in row["event_ids"]:
        row["event_ids"] = [*row["event_ids"], env["event_id"]]
        row["aggregate_version"] = max(row["aggregate_version"], env["aggregate_version"])
        row["status"] = "rejected" if status == "rejected" else row["status"]
        row["code"] = code if code is not None else row["code"]
        row["reason"] = reason if reason is not None else row["reason"]
