"""What one command does to the write side: the messages to produce and the state to store.

``plan_command`` is pure: it reads state documents through a function and returns a Plan; the
Faust agent (``streams.command_processor``) produces the Plan's messages, waits for the acks,
then stores its documents. Tests drive it with a dict.

A command runs through up to three stages, all on its tenant's partition:

1. the aggregate's decider (``commands/``), which refuses it or yields events;
2. enforcement, for DeployAgent, UpdateAgent and SubmitTask: the Cedar verdict becomes an
   EnforcementDecided event, and a denial replaces the outcome (AgentDeploymentRejected, or
   TaskRejected after TaskSubmitted);
3. orchestration, whenever task events happen (and on the timer's Tick): the tenant's
   scheduler reacts (TaskScheduled with its DispatchRun to the kernel, retries, outcomes,
   timeouts).

State documents live in one key-value table, keyed ``<aggregate>:<aggregate id>`` for
aggregates, ``scheduler:<tenant>`` for the orchestrator's counters and ``policies:<tenant>``
for the tenant's compiled policy source; each is ``{"state": ..., "recent": [command ids]}``.
The orchestrator's queues and timers are small entries of their own (``queue:``, ``slots:``,
``parked:``, ``eligible:``, ``wheel:``; ``commands.orchestration``), ``{"state": ...}``, and a
write of None deletes one: no document grows with the tenant's backlog.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from commands import enforcement, orchestration
from commands.aggregate import Aggregate
from commands.aggregates import AGGREGATES, aggregate_for
from commands.model import Command, Context, Event, Rejection, event_id, scoped_id
from commands.scheduler import Scheduler
from commands.task import ENFORCEMENT_DECIDED, REJECTED, SCHEDULED, TaskState
from schemas.topics import DISPATCH, EVENTS_PREFIX, events_topic

TICK = "aion.task.Tick"
DISPATCH_RUN = "aion.kernel.DispatchRun"
AUTHORIZED = "aion.task.TaskAuthorized"
DEPLOYMENT_REJECTED = "aion.agent.AgentDeploymentRejected"
POLICY_EVENTS = frozenset({"aion.policy.PolicyPut", "aion.policy.PolicyDeleted"})
RECENT_COMMANDS = 128  # ids remembered per document to recognise a redelivered command

Read = Callable[[str], dict[str, Any] | None]


@dataclass(frozen=True)
class Emission:
    topic: str
    key: str
    record: str
    value: dict[str, Any]


@dataclass
class Plan:
    emissions: list[Emission] = field(default_factory=list)
    # key -> document, or None to delete it; the command's own document last
    writes: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    duplicate: bool = False  # the command was handled before: do nothing
    scheduler_due: int | None = None  # the tenant scheduler's next due time, if it was touched


def event_envelope(
    command: Command,
    identity: str,
    event_type: str,
    aggregate_type: str,
    aggregate_id: str,
    version: int,
    outcome: bool,
) -> dict[str, Any]:
    """The envelope of an event a command caused (``outcome_events`` is set once the whole
    outcome is known)."""
    env = command.envelope
    return {
        "event_id": identity,
        "event_type": event_type,
        "command_id": command.command_id,
        "correlation_id": env["correlation_id"],
        "causation_id": command.command_id,
        "tenant_id": str(env["tenant_id"]),
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "aggregate_version": version,
        "occurred_at": env["issued_at"],
        "actor": env["actor"],
        "traceparent": env.get("traceparent"),
        "tracestate": env.get("tracestate"),
        "command_outcome": outcome,
    }


def state_key(aggregate_type: str, aggregate_id: str) -> str:
    return f"{aggregate_type}:{aggregate_id}"


def scheduler_key(tenant_id: str) -> str:
    return f"scheduler:{tenant_id}"


def policies_key(tenant_id: str) -> str:
    return f"policies:{tenant_id}"


def derived_id(command_id: str, purpose: str) -> str:
    """A stable id derived from a command (e.g. its enforcement's), the same on a retry."""
    return str(uuid.uuid5(uuid.UUID(int=0), f"{command_id}/{purpose}"))


def millis(value: Any) -> int:
    """issued_at decodes as a datetime (timestamp-millis); deciders see epoch milliseconds."""
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)


class _Planning:
    """The working set of one command: documents read once, changed in memory, then written."""

    def __init__(
        self,
        command: Command,
        read: Read,
        facts: dict[tuple[str, str], Any],
        grace_ms: int,
    ) -> None:
        self.command = command
        self.read = read
        self.facts = facts
        self.grace_ms = grace_ms
        self.tenant_id = str(command.envelope["tenant_id"])
        self.now_ms = millis(command.envelope["issued_at"])
        self.plan = Plan()
        self.documents: dict[str, dict[str, Any]] = {}
        self.states: dict[str, Any] = {}
        self.changed: list[str] = []
        self.deleted: set[str] = set()
        self.absent: set[str] = set()  # keys that held nothing when first read
        self.scheduler: Scheduler | None = None

    # --- documents ------------------------------------------------------------------------

    def document(self, key: str) -> dict[str, Any]:
        if key not in self.documents:
            stored = self.read(key)
            if stored is None:
                self.absent.add(key)
            self.documents[key] = stored or {"state": None, "recent": []}
        return self.documents[key]

    def state(self, aggregate: Aggregate, aggregate_id: str) -> Any:
        key = state_key(aggregate.name, aggregate_id)
        if key not in self.states:
            self.states[key] = aggregate.load(self.document(key)["state"])
        return self.states[key]

    def touch(self, key: str) -> None:
        if key in self.changed:
            self.changed.remove(key)
        self.changed.append(key)

    def context(self) -> Context:
        """The decider's view of its tenant's other aggregates (same partition, so current)."""

        def lookup(aggregate_type: str, aggregate_id: str) -> dict[str, Any] | None:
            if (aggregate_type, aggregate_id) in self.facts:
                return dict(self.facts[(aggregate_type, aggregate_id)])
            other = AGGREGATES.get(aggregate_type)
            if other is None:
                return None
            key = state_key(aggregate_type, aggregate_id)
            if key not in self.states:
                self.document(key)  # read once: the state below comes from the same read
                if key in self.absent:
                    return None
            return other.summary(self.state(other, aggregate_id))

        return Context(now_ms=self.now_ms, lookup=lookup)

    # --- emissions ------------------------------------------------------------------------

    def envelope(
        self, aggregate_type: str, aggregate_id: str, version: int, event_type: str
    ) -> dict[str, Any]:
        env = self.command.envelope
        outcome = (
            self.command.type != TICK
            and aggregate_id == env.get("aggregate_id")
            and aggregate_type != "enforcement"
        )
        identity = event_id(self.command.command_id, len(self.plan.emissions))
        return event_envelope(
            self.command, identity, event_type, aggregate_type, aggregate_id, version, outcome
        )

    def emit(self, topic: str, key: str, record: str, envelope: dict[str, Any], body: Any) -> None:
        value = {"envelope": envelope, **body}
        self.plan.emissions.append(Emission(topic, key, record, value))

    def reject(self, aggregate: Aggregate, aggregate_id: str, rejection: Rejection) -> None:
        version = self.state(aggregate, aggregate_id).version
        self.emit(
            events_topic(aggregate.name),
            aggregate_id,
            rejection.type,
            self.envelope(aggregate.name, aggregate_id, version, rejection.type),
            {
                "command_type": self.command.type,
                "code": rejection.code,
                "reason": rejection.reason,
                "field": rejection.field,
                "current_version": version,
            },
        )

    def apply(self, aggregate: Aggregate, aggregate_id: str, event: Event) -> None:
        """Fold an event into its aggregate, emit it, and let the orchestrator see it."""
        if event.type == ENFORCEMENT_DECIDED:
            self.emit_enforcement(aggregate_id, event)
            return
        key = state_key(aggregate.name, aggregate_id)
        before = self.state(aggregate, aggregate_id)
        state = aggregate.evolve(before, event)
        self.states[key] = state
        self.touch(key)
        self.emit(
            events_topic(aggregate.name),
            aggregate_id,
            event.type,
            self.envelope(aggregate.name, aggregate_id, state.version, event.type),
            event.payload,
        )
        if aggregate.name == "task":
            self.orchestrate_event(aggregate_id, event, before, state)
        if event.type in POLICY_EVENTS:
            self.index_policy(event)

    def emit_enforcement(self, subject_id: str, event: Event) -> None:
        enforcement_id = str(event.payload["enforcement_id"])
        self.emit(
            events_topic("enforcement"),
            subject_id,
            event.type,
            self.envelope("enforcement", enforcement_id, 1, event.type),
            event.payload,
        )

    # --- stage 2: enforcement -------------------------------------------------------------

    def tenant_policies(self) -> dict[str, str]:
        stored = self.document(policies_key(self.tenant_id))["state"] or {}
        return dict(stored.get("policies", {}))

    def index_policy(self, event: Event) -> None:
        key = policies_key(self.tenant_id)
        policies = self.tenant_policies()
        policy_id = str(event.payload["policy_id"])
        if event.type == "aion.policy.PolicyPut":
            policies[policy_id] = str(event.payload["cedar"])
        else:
            policies.pop(policy_id, None)
        self.document(key)["state"] = {"policies": policies}
        self.touch(key)

    def key_roles(self, actor: str) -> list[str]:
        """An API key actor's roles as its aggregate records them (same tenant, so same
        partition: current); none for a revoked key or any other actor. The envelope's
        ``actor_roles`` are never read: whoever writes to aion.commands sets them."""
        key_id = enforcement.api_key_of(actor)
        if key_id is None:
            return []
        key = self.state(AGGREGATES["api_key"], scoped_id(self.tenant_id, key_id))
        return list(key.roles) if key.status == "active" else []

    def enforce(self, aggregate_id: str, events: list[Event]) -> list[Event]:
        """The decider's events with the Cedar verdict woven in (a denial replaces them)."""
        command = self.command
        action, subject_type = enforcement.ACTIONS[command.type]
        context = self.context()
        tenant = context.find("tenant", self.tenant_id) or {}
        first = events[0]
        if subject_type == "agent":
            manifest = first.payload["manifest"]
            task = None
        else:
            agent = context.find("agent", scoped_id(self.tenant_id, first.payload["agent_name"]))
            manifest = (agent or {}).get("manifest") or {}
            task = first.payload
        request = enforcement.request_for(
            command.type,
            self.tenant_id,
            str(command.envelope["actor"]),
            tenant,
            self.now_ms,
            manifest,
            task,
            key_roles=self.key_roles(str(command.envelope["actor"])),
        )
        policies = enforcement.compile_policies(enforcement.policy_key(self.tenant_policies()))
        verdict = enforcement.evaluate(request, policies)
        enforcement_id = derived_id(command.command_id, "enforcement")
        decided = Event(
            ENFORCEMENT_DECIDED,
            {
                "enforcement_id": enforcement_id,
                "subject_type": subject_type,
                "subject_id": aggregate_id,
                "action": action,
                "decision": verdict.decision,
                "policy_ids": list(verdict.policy_ids),
                "diagnostics": list(verdict.diagnostics),
                "request": json.dumps(request, sort_keys=True, separators=(",", ":")),
            },
        )
        reason = verdict.reason(action)
        if subject_type == "agent":
            if verdict.allowed:
                return [decided, *events]
            name = first.payload["agent_name"]
            refusal = {"agent_name": name, "reason": reason, "field": None}
            return [decided, Event(DEPLOYMENT_REJECTED, refusal)]
        task_id = first.payload["task_id"]
        if verdict.allowed:
            authorized = {"task_id": task_id, "enforcement_id": enforcement_id}
            verdict_event = Event(AUTHORIZED, authorized)
        else:
            verdict_event = Event(REJECTED, {"task_id": task_id, "reason": reason, "field": None})
        return [*events, decided, verdict_event]

    # --- stage 3: orchestration -----------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        """``commands.entries.Entries``: the orchestrator's small entries, in this working set."""
        if key in self.deleted:
            return None
        state = self.document(key)["state"]
        return state if isinstance(state, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if key not in self.documents and key not in self.deleted:
            self.document(key)  # learn whether it existed (a queue entry is usually new)
        self.deleted.discard(key)
        self.documents[key] = {"state": value}
        self.touch(key)

    def delete(self, key: str) -> None:
        self.deleted.add(key)
        self.documents[key] = {"state": None}
        self.touch(key)

    def task_state(self, task_id: str) -> TaskState:
        state: TaskState = self.state(AGGREGATES["task"], scoped_id(self.tenant_id, task_id))
        return state

    def agent_summary(self, agent_name: str) -> dict[str, Any]:
        return dict(self.context().find("agent", scoped_id(self.tenant_id, agent_name)) or {})

    def manifest(self, agent_name: str) -> dict[str, Any] | None:
        manifest: dict[str, Any] | None = self.agent_summary(agent_name).get("manifest")
        return manifest

    def load_scheduler(self) -> Scheduler:
        if self.scheduler is None:
            document = self.document(scheduler_key(self.tenant_id))
            stored = document.get("state")
            old_jobs = stored.get("jobs") if isinstance(stored, dict) else None
            if not isinstance(stored, dict) or "queue" not in stored:
                document["state"] = orchestration.new_scheduler()
            self.scheduler = Scheduler(
                self.tenant_id,
                document["state"],
                self,
                self.now_ms,
                self.grace_ms,
                self.task_state,
                self.manifest,
            )
            if old_jobs:
                self.scheduler.adopt(old_jobs)
        return self.scheduler

    def orchestrate_event(
        self, task_aggregate_id: str, event: Event, before: TaskState, after: TaskState
    ) -> None:
        reactions = self.load_scheduler().on_event(before, after, event)
        if event.type == SCHEDULED and after.status == "scheduled":
            self.dispatch(task_aggregate_id, event, after)
        for reaction in reactions:
            self.apply(AGGREGATES["task"], task_aggregate_id, reaction)

    def dispatch(self, task_aggregate_id: str, event: Event, task: TaskState) -> None:
        """The run's dispatch, with the agent's manifest as it stands now (no copy is queued)."""
        agent = self.agent_summary(str(task.agent_name))
        run_id = str(event.payload["run_id"])
        self.emit(
            DISPATCH,
            scoped_id(self.tenant_id, run_id),
            DISPATCH_RUN,
            self.envelope("task", task_aggregate_id, task.version, DISPATCH_RUN),
            {
                "tenant_id": self.tenant_id,
                "task_id": task.task_id,
                "run_id": run_id,
                "attempt": int(event.payload["attempt"]),
                "agent_version": str(agent.get("agent_version") or task.agent_version),
                "manifest": agent.get("manifest") or {},
                "input": task.input,
                "deadline_ms": task.deadline_ms,
                "scheduled_at_ms": self.now_ms,
            },
        )

    def advance(self) -> None:
        """Let the tenant's scheduler fire its due timers and admit what its limits allow."""
        tenant = self.context().find("tenant", self.tenant_id)
        limits = orchestration.Limits.of(tenant)
        scheduler = self.load_scheduler()
        task = AGGREGATES["task"]

        def apply(task_id: str, event: Event) -> None:
            self.apply(task, scoped_id(self.tenant_id, task_id), event)

        scheduler.advance(limits, apply)
        scheduler.prune()
        key = scheduler_key(self.tenant_id)
        document = self.document(key)
        due = scheduler.due_ms(limits)
        self.plan.scheduler_due = due
        if scheduler.changed or document.get("due_ms") != due or self.command.type == TICK:
            document["due_ms"] = due
            self.touch(key)

    # --- the whole command ----------------------------------------------------------------

    def finish(self, primary_key: str) -> Plan:
        """Write every changed document, the command's own (with its id remembered) last; tell
        each outcome event how many make up the outcome (they may be read in separate batches)."""
        envelopes = [e.value["envelope"] for e in self.plan.emissions]
        outcome_events = sum(
            1
            for e in self.plan.emissions
            if e.topic.startswith(EVENTS_PREFIX) and e.value["envelope"]["command_outcome"]
        )
        for env in envelopes:
            env["outcome_events"] = outcome_events
        primary = self.document(primary_key)
        primary["recent"] = [*primary.get("recent", []), self.command.command_id][-RECENT_COMMANDS:]
        self.touch(primary_key)
        for key in self.changed:
            if key in self.deleted:
                if key not in self.absent:  # an entry made and taken in one command: nothing
                    self.plan.writes[key] = None
                continue
            document = self.documents.get(key) or self.document(key)
            if key in self.states:
                aggregate = AGGREGATES[key.split(":", 1)[0]]
                document["state"] = aggregate.dump(self.states[key])
            self.plan.writes[key] = document
        return self.plan


def plan_command(
    command: Command,
    read: Read,
    facts: dict[tuple[str, str], Any] | None = None,
    grace_ms: int = orchestration.DEFAULT_GRACE_MS,
) -> Plan:
    """Everything a command leads to. Raises KeyError for a command no aggregate handles."""
    work = _Planning(command, read, facts or {}, grace_ms)
    tenant_id = work.tenant_id
    if command.type == TICK:
        primary_key = scheduler_key(tenant_id)
    else:
        aggregate = aggregate_for(command.type)
        aggregate_id = str(command.envelope["aggregate_id"])
        primary_key = state_key(aggregate.name, aggregate_id)
    if command.command_id in work.document(primary_key).get("recent", []):
        return Plan(duplicate=True)
    if command.type != TICK:
        decision = aggregate.handle(work.state(aggregate, aggregate_id), command, work.context())
        if isinstance(decision, Rejection):
            work.reject(aggregate, aggregate_id, decision)
            return work.finish(primary_key)
        if command.type in enforcement.ACTIONS and decision:
            decision = work.enforce(aggregate_id, decision)
        for event in decision:
            work.apply(aggregate, aggregate_id, event)
    if command.type == TICK or (work.scheduler is not None and work.scheduler.changed):
        work.advance()
    return work.finish(primary_key)
