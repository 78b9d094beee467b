"""The facts the task stage decides against, replicated from the tenant stage (decision 56).

A task's decider needs its tenant (status, limits, users), its agent (status, manifest), the
roles of the API key that submitted it and the tenant's policies. They are decided on the
tenant's partition of aion.commands. Whenever a command there changes one, the tenant stage
sends its new summary as ``aion.facts.ReplicateFact`` to every partition of aion.tasks, in the
same batch as the events that changed it; each task-stage partition stores it as
``fact:<type>:<id>``.

Why this is consistent enough: the fact is on every task partition before the change's events
reach any read model (both are acknowledged in the same flush), so a client that saw an agent
deployed, or a policy put, and then submits a task, is decided against it. Rules that must hold
against the current state whatever the timing (a suspended tenant runs nothing, quotas) are
kept by admission, on the tenant's partition.
"""

from __future__ import annotations

import json
from typing import Any

from commands.admission import REPLICATE_FACT
from schemas.topics import TASKS
from streams.plan import Working, fact_key

# Aggregates whose summary is replicated (policies are replicated as the tenant's whole set).
REPLICATED = frozenset({"tenant", "agent", "api_key"})
POLICIES = "policies"


def summary_of(aggregate_type: str, state: Any, summarize: Any) -> dict[str, Any] | None:
    """What the task stage needs of an aggregate; None when it is gone (absent)."""
    if getattr(state, "status", "absent") == "absent":
        return None
    if aggregate_type == "api_key":
        return {"status": state.status, "roles": list(state.roles)}
    return dict(summarize(state))


def replicate(
    work: Working, fact_type: str, fact_id: str, summary: dict[str, Any] | None, partitions: int
) -> None:
    """The fact to every partition of aion.tasks."""
    body = {
        "fact_type": fact_type,
        "fact_id": fact_id,
        "summary": None if summary is None else json.dumps(summary, sort_keys=True),
    }
    aggregate = ("tenant", work.tenant_id) if fact_type == POLICIES else (fact_type, fact_id)
    for partition in range(partitions):
        work.request(
            TASKS,
            f"{fact_type}/{fact_id}",
            REPLICATE_FACT,
            aggregate,
            body,
            f"fact/{fact_type}/{fact_id}/{partition}",
            partition=partition,
        )


def store(work: Working, payload: dict[str, Any]) -> None:
    """A replicated fact, kept on this partition (the latest sent wins: its partition's order
    is its writer's order)."""
    key = fact_key(str(payload["fact_type"]), str(payload["fact_id"]))
    text = payload.get("summary")
    if text is None:
        work.delete(key)
    else:
        work.put(key, json.loads(text))
