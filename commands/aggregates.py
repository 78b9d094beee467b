"""The registry of aggregates: which aggregate handles which command."""

from __future__ import annotations

from commands import agent, api_key, model_registry, policy, task, tenant
from commands.aggregate import Aggregate

AGGREGATES: dict[str, Aggregate] = {
    a.name: a
    for a in (
        tenant.aggregate,
        model_registry.aggregate,
        agent.aggregate,
        policy.aggregate,
        task.aggregate,
        api_key.aggregate,
    )
}


def aggregate_for(command_type: str) -> Aggregate:
    for aggregate in AGGREGATES.values():
        if command_type in aggregate.commands:
            return aggregate
    raise KeyError(f"no aggregate handles {command_type}")
