"""The worker's write model, folded again from the events topics (issue 17, finding 8).

The command processor's state lives in three Faust tables whose changelogs are compacted Kafka
topics (the tenant stage's aggregates and schedulers, the task stage's tasks; decision 56).
When those are lost (deleted, or written with replication 1 on a broker that died), the events
topics still hold everything the state was folded from: this module folds them again, with the
same deciders' ``evolve``, into the documents the tables hold.

- each aggregate's document: its state folded from its events (duplicates that at-least-once
  left, same version, are dropped), and the ids of the last commands that ended on it;
- each tenant's compiled policy sources (``policies:<tenant>``);
- the facts the task stage decides against (``streams.facts``), for every task partition;
- each tenant's scheduler: its live tasks adopted by ``Scheduler.adopt`` (a job each; queued
  ones in the
  order they were authorized, slots, retries and deadlines), with a watchdog for every run
  that was running (its kernel worker may be gone too), and due at once, so that the first
  Tick admits what the limits allow.

Pure, no I/O: ``streams.rebuild_changelog`` reads the topics and writes the changelogs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from commands.aggregates import AGGREGATES
from commands.model import Event, scoped_id
from commands.orchestration import new_scheduler, quotas_of
from commands.scheduler import Scheduler
from commands.task import AUTHORIZED, RETRY_SCHEDULED, TaskState
from schemas.topics import REJECTED
from streams import facts
from streams.plan import RECENT_COMMANDS, fact_key, millis, policies_key, state_key
from streams.tenant_stage import POLICY_EVENTS, scheduler_key

PHASES = {
    "authorized": "queued",
    "scheduled": "active",
    "running": "active",
    "retrying": "retrying",
}


class MemoryEntries:
    """``commands.entries.Entries`` over a dict: the scheduler's small entries being rebuilt."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.values.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


@dataclass
class TaskFacts:
    """What a task's events say that its state does not keep: when it was authorized (the
    queue's order) and when its retry is due."""

    authorized: tuple[int, int] = (0, 0)  # (issued at, order read)
    retry_at_ms: int = 0


@dataclass
class Folded:
    """The aggregates folded so far, and what the schedulers need besides."""

    states: dict[str, Any] = field(default_factory=dict)
    recent: dict[str, list[str]] = field(default_factory=dict)
    tenants: dict[str, str] = field(default_factory=dict)  # document key -> tenant
    policies: dict[str, dict[str, str]] = field(default_factory=dict)
    tasks: dict[str, TaskFacts] = field(default_factory=dict)
    duplicates: int = 0
    gaps: list[str] = field(default_factory=list)  # aggregates whose versions skip one
    read: int = 0

    def add(self, record: str, value: dict[str, Any]) -> None:
        """Fold one event (any order across aggregates; each aggregate's own in order)."""
        self.read += 1
        env = value["envelope"]
        aggregate = AGGREGATES.get(str(env["aggregate_type"]))
        if aggregate is None:
            return  # enforcement verdicts: records, not state
        aggregate_id = str(env["aggregate_id"])
        key = state_key(aggregate.name, aggregate_id)
        self.tenants[key] = str(env["tenant_id"])
        state = self.states.get(key) or aggregate.initial()
        version = int(env["aggregate_version"])
        if record != REJECTED and version <= state.version:
            self.duplicates += 1
            return
        if env.get("command_outcome") and env.get("command_id"):
            self._remember(key, str(env["command_id"]))
        if record == REJECTED:
            return
        if version != state.version + 1 and key not in self.gaps:
            self.gaps.append(key)
        payload = {name: part for name, part in value.items() if name != "envelope"}
        self.states[key] = aggregate.evolve(state, Event(record, payload))
        if aggregate.name == "task":
            facts = self.tasks.setdefault(key, TaskFacts())
            if record == AUTHORIZED:
                facts.authorized = (millis(env["occurred_at"]), self.read)
            elif record == RETRY_SCHEDULED:
                facts.retry_at_ms = int(payload["retry_at_ms"])
        if record in POLICY_EVENTS:
            sources = self.policies.setdefault(str(env["tenant_id"]), {})
            if record.endswith("PolicyPut"):
                sources[str(payload["policy_id"])] = str(payload["cedar"])
            else:
                sources.pop(str(payload["policy_id"]), None)

    def _remember(self, key: str, command_id: str) -> None:
        recent = self.recent.setdefault(key, [])
        if command_id not in recent:  # an outcome may be several events, a rejection twice
            recent.append(command_id)
            del recent[:-RECENT_COMMANDS]


Documents = dict[str, tuple[str, dict[str, Any]]]  # key -> (partition key, document)


@dataclass
class Rebuilt:
    """The documents of the three tables, keyed as the command processor keys them, each with
    the message key whose partition holds it (the tenant; the task on the task stage), and the
    replicated facts, which every task partition holds."""

    aggregates: Documents
    schedulers: Documents
    tasks: Documents = field(default_factory=dict)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)


def fold(records: Iterable[tuple[str, dict[str, Any]]]) -> Folded:
    folded = Folded()
    for record, value in records:
        folded.add(record, value)
    return folded


def documents(folded: Folded, now_ms: int, grace_ms: int) -> Rebuilt:
    """The tables' documents from what was folded; schedulers as of ``now_ms``."""
    aggregates: Documents = {}
    tasks: Documents = {}
    replicated: dict[str, dict[str, Any]] = {}
    for key, state in folded.states.items():
        aggregate = AGGREGATES[key.split(":", 1)[0]]
        document = {"state": aggregate.dump(state), "recent": folded.recent.get(key, [])}
        place(key, document, folded.tenants[key], aggregates, tasks)
        if aggregate.name in facts.REPLICATED:
            summary = facts.summary_of(aggregate.name, state, aggregate.summary)
            if summary is not None:
                replicated[fact_key(aggregate.name, key.split(":", 1)[1])] = {"state": summary}
    for key, recent in folded.recent.items():  # rejected commands on an aggregate never made
        if key not in aggregates and key not in tasks:
            aggregate = AGGREGATES[key.split(":", 1)[0]]
            document = {"state": aggregate.dump(aggregate.initial()), "recent": recent}
            place(key, document, folded.tenants[key], aggregates, tasks)
    for tenant, sources in folded.policies.items():
        aggregates[policies_key(tenant)] = (tenant, {"state": {"policies": sources}, "recent": []})
        replicated[fact_key(facts.POLICIES, tenant)] = {"state": {"policies": sources}}
    schedulers: Documents = {}
    for tenant in sorted(set(folded.tenants.values())):
        entries, state = _scheduler(folded, tenant, now_ms, grace_ms)
        due: dict[str, Any] = {"state": state, "recent": [], "due_ms": now_ms}
        schedulers[scheduler_key(tenant)] = (tenant, due)
        for key, value in entries.values.items():
            aggregates[key] = (tenant, {"state": value})
    return Rebuilt(aggregates, schedulers, tasks, replicated)


def place(
    key: str, document: dict[str, Any], tenant: str, aggregates: Documents, tasks: Documents
) -> None:
    """A task's document goes to the task stage's table, keyed by the task; any other to the
    tenant stage's, keyed by its tenant."""
    if key.startswith("task:"):
        tasks[key] = (key.split(":", 1)[1], document)
    else:
        aggregates[key] = (tenant, document)


def _scheduler(
    folded: Folded, tenant: str, now_ms: int, grace_ms: int
) -> tuple[MemoryEntries, dict[str, Any]]:
    entries, state = MemoryEntries(), new_scheduler()

    def task(task_id: str) -> TaskState:
        found = folded.states.get(state_key("task", scoped_id(tenant, task_id)))
        return found if isinstance(found, TaskState) else TaskState()

    def manifest(agent: str) -> dict[str, Any] | None:
        found = folded.states.get(state_key("agent", scoped_id(tenant, agent)))
        summary = AGGREGATES["agent"].summary(found) if found is not None else {}
        return summary.get("manifest")

    scheduler = Scheduler(tenant, state, entries, now_ms, grace_ms, task, manifest)
    jobs: dict[str, dict[str, Any]] = {}
    running: list[TaskState] = []
    live = [
        (key, found)
        for key, found in folded.states.items()
        if key.startswith("task:") and folded.tenants[key] == tenant and found.status in PHASES
    ]
    for key, found in sorted(live, key=lambda item: folded.tasks[item[0]].authorized):
        facts = folded.tasks[key]
        jobs[str(found.task_id)] = {
            "agent_name": found.agent_name,
            "phase": PHASES.get(found.status),
            "status": found.status,
            "run_id": found.run_id,
            "attempt": found.attempt,
            "retry_at_ms": facts.retry_at_ms,
            "deadline_ms": found.deadline_ms,
            "seq": len(jobs),
        }
        if found.status == "running":
            running.append(found)
    if jobs:
        scheduler.adopt(jobs)
    for found in running:  # its kernel worker may have gone with the changelog
        timeout = int(quotas_of(manifest(str(found.agent_name))).get("timeout_ms", 30_000))
        watchdog = ["watchdog", str(found.task_id), str(found.run_id), now_ms]
        scheduler.wheel.add(now_ms + timeout + grace_ms, watchdog)
    return entries, state
