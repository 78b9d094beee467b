"""The command processor's two keyed stages (decision 56): for each, the topic it consumes,
the table it keeps its documents in, the producer it sends with and the planner it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from commands.model import Command
from schemas.topics import COMMANDS, TASKS
from streams.app import StreamsApp
from streams.emitter import Emitter
from streams.plan import Plan
from streams.task_stage import plan_task_command
from streams.tenant_stage import plan_tenant_command

Planner = Callable[[Command, Callable[[str], dict[str, Any] | None], Any, int], Plan]


@dataclass(frozen=True)
class Stage:
    """One of the two keyed stages: its topic, its table, its producer and its planner."""

    topic: str
    table: Any
    emitter: Emitter
    planner: Planner
    schedulers: Any = None  # the tenant stage keeps ``scheduler:`` documents apart

    def target(self, key: str) -> Any:
        if self.schedulers is not None and key.startswith("scheduler:"):
            return self.schedulers
        return self.table


def task_partitions(streams: StreamsApp) -> int:
    """How many partitions aion.tasks has (a fact must reach each), as the broker says; the
    configured count if it cannot say now."""
    listed = streams.emitter.producer.list_topics(TASKS, timeout=10).topics.get(TASKS)
    if listed is None or listed.error is not None or not listed.partitions:
        return streams.settings.topic_partitions
    return len(listed.partitions)


def stages(streams: StreamsApp) -> tuple[Stage, Stage]:
    partitions = task_partitions(streams)

    def tenant_planner(command: Command, read: Any, facts: Any, grace_ms: int) -> Plan:
        return plan_tenant_command(command, read, facts, grace_ms, partitions)

    tenant = Stage(
        COMMANDS, streams.aggregates, streams.emitter, tenant_planner, streams.schedulers
    )
    task = Stage(TASKS, streams.tasks, streams.task_emitter, plan_task_command)
    return tenant, task
