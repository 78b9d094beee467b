"""The working set of one command: the documents it reads and writes and the messages it emits.

``Working`` is pure: it reads state documents through a function, and the stage that plans a
command (``streams.tenant_stage`` on aion.commands, ``streams.task_stage`` on aion.tasks;
decision 56) fills its Plan. The Faust agent (``streams.command_processor``) produces the
Plan's messages, waits for the acks, then stores its documents. Tests drive it with a dict.

What both stages share lives here: the aggregates' deciders (``commands/``), which refuse a
command or yield events; enforcement, for DeployAgent, UpdateAgent and SubmitTask (the Cedar
verdict becomes an EnforcementDecided event, and a denial replaces the outcome); and the
documents, each ``{"state": ..., "recent": [command ids]}``, keyed ``<aggregate>:<id>``.
A write of None deletes a document.

On the tenant stage, a decider sees the tenant's other aggregates as they stand (same
partition). On the task stage, it sees their summaries as replicated to its partition
(``fact:<type>:<id>``, ``streams.facts``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from commands import enforcement
from commands.admission import INTERNAL
from commands.aggregate import Aggregate
from commands.aggregates import AGGREGATES
from commands.model import Command, Context, Event, Rejection, event_id, scoped_id
from commands.task import ENFORCEMENT_DECIDED, REJECTED
from schemas.topics import EVENTS_PREFIX, events_topic

TICK = "aion.task.Tick"
AUTHORIZED = "aion.task.TaskAuthorized"
DEPLOYMENT_REJECTED = "aion.agent.AgentDeploymentRejected"
RECENT_COMMANDS = 128  # ids remembered per document to recognise a redelivered command

Read = Callable[[str], dict[str, Any] | None]


@dataclass(frozen=True)
class Emission:
    topic: str
    key: str
    record: str
    value: dict[str, Any]
    partition: int | None = None  # None: the key's partition (murmur2)


@dataclass
class Plan:
    emissions: list[Emission] = field(default_factory=list)
    # key -> document, or None to delete it; the command's own document last
    writes: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    duplicate: bool = False  # the command was handled before: do nothing


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


def fact_key(fact_type: str, fact_id: str) -> str:
    """A summary replicated to the task stage's partitions (``streams.facts``)."""
    return f"fact:{fact_type}:{fact_id}"


def policies_key(tenant_id: str) -> str:
    return f"policies:{tenant_id}"


def derived_id(command_id: str, purpose: str) -> str:
    """A stable id derived from a command (e.g. its enforcement's), the same on a retry."""
    return str(uuid.uuid5(uuid.UUID(int=0), f"{command_id}/{purpose}"))


def millis(value: Any) -> int:
    """issued_at decodes as a datetime (timestamp-millis); deciders see epoch milliseconds."""
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)


class Working:
    """The working set of one command: documents read once, changed in memory, then written.

    ``replicas``: other aggregates are read from the facts replicated to this partition (the
    task stage), not from their own documents (the tenant stage). ``on_applied`` is the
    stage's reaction to each event folded into an aggregate."""

    replicas = False

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

    def replica(self, fact_type: str, fact_id: str) -> dict[str, Any] | None:
        """A summary replicated to this partition (the task stage), or None."""
        summary = self.document(fact_key(fact_type, fact_id))["state"]
        return dict(summary) if isinstance(summary, dict) else None

    def context(self) -> Context:
        """The decider's view of its tenant's other aggregates: current on the tenant stage,
        as replicated to this partition on the task stage."""

        def lookup(aggregate_type: str, aggregate_id: str) -> dict[str, Any] | None:
            if (aggregate_type, aggregate_id) in self.facts:
                return dict(self.facts[(aggregate_type, aggregate_id)])
            if self.replicas:
                return self.replica(aggregate_type, aggregate_id)
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
            and self.command.type not in INTERNAL
            and aggregate_id == env.get("aggregate_id")
            and aggregate_type != "enforcement"
        )
        identity = event_id(self.command.command_id, len(self.plan.emissions))
        return event_envelope(
            self.command, identity, event_type, aggregate_type, aggregate_id, version, outcome
        )

    def emit(
        self,
        topic: str,
        key: str,
        record: str,
        envelope: dict[str, Any],
        body: Any,
        partition: int | None = None,
    ) -> None:
        value = {"envelope": envelope, **body}
        self.plan.emissions.append(Emission(topic, key, record, value, partition))

    def request(
        self,
        topic: str,
        key: str,
        record: str,
        aggregate: tuple[str, str],
        body: dict[str, Any],
        purpose: str,
        partition: int | None = None,
    ) -> None:
        """An internal command this command causes (admission's requests and answers, the
        replicated facts): its id derived from this command's, so a retry sends the same."""
        env = self.command.envelope
        command_id = derived_id(self.command.command_id, purpose)
        envelope = {
            "command_id": command_id,
            "command_type": record,
            "correlation_id": env.get("correlation_id") or self.command.command_id,
            "tenant_id": self.tenant_id,
            "aggregate_type": aggregate[0],
            "aggregate_id": aggregate[1],
            "expected_version": None,
            "idempotency_key": None,
            "issued_at": env["issued_at"],
            "actor": "aion-orchestrator",
            "actor_roles": [],
            "traceparent": env.get("traceparent"),
            "tracestate": env.get("tracestate"),
        }
        self.emit(topic, key, record, envelope, body, partition)

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
        """Fold an event into its aggregate, emit it, and let the stage react to it."""
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
        self.on_applied(aggregate, aggregate_id, event, before, state)

    def on_applied(
        self, aggregate: Aggregate, aggregate_id: str, event: Event, before: Any, after: Any
    ) -> None:
        """The stage's reaction to a folded event (none here)."""

    def emit_enforcement(self, subject_id: str, event: Event) -> None:
        enforcement_id = str(event.payload["enforcement_id"])
        self.emit(
            events_topic("enforcement"),
            subject_id,
            event.type,
            self.envelope("enforcement", enforcement_id, 1, event.type),
            event.payload,
        )

    # --- enforcement ----------------------------------------------------------------------

    def tenant_policies(self) -> dict[str, str]:
        if self.replicas:
            stored = self.replica("policies", self.tenant_id) or {}
        else:
            stored = self.document(policies_key(self.tenant_id))["state"] or {}
        return dict(stored.get("policies", {}))

    def key_roles(self, actor: str) -> list[str]:
        """An API key actor's roles as its aggregate records them (current on the tenant
        stage, replicated on the task stage); none for a revoked key or any other actor. The
        envelope's ``actor_roles`` are never read: whoever writes a command sets them."""
        key_id = enforcement.api_key_of(actor)
        if key_id is None:
            return []
        key_aggregate_id = scoped_id(self.tenant_id, key_id)
        if self.replicas:
            found = self.replica("api_key", key_aggregate_id) or {}
            return list(found.get("roles") or []) if found.get("status") == "active" else []
        key = self.state(AGGREGATES["api_key"], key_aggregate_id)
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

    def decide(self, aggregate: Aggregate, aggregate_id: str) -> None:
        """The command's own aggregate: its decider, enforcement, and the events applied."""
        command = self.command
        decision = aggregate.handle(self.state(aggregate, aggregate_id), command, self.context())
        if isinstance(decision, Rejection):
            self.reject(aggregate, aggregate_id, decision)
            return
        if command.type in enforcement.ACTIONS and decision:
            decision = self.enforce(aggregate_id, decision)
        for event in decision:
            self.apply(aggregate, aggregate_id, event)

    # --- small entries (``commands.entries.Entries``) -------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
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

    # --- the whole command ----------------------------------------------------------------

    def duplicate(self, primary_key: str) -> bool:
        """Whether the command was handled before (its id is in its document's recent list)."""
        return self.command.command_id in self.document(primary_key).get("recent", [])

    def finish(self, primary_key: str | None) -> Plan:
        """Write every changed document, the command's own (with its id remembered) last; tell
        each outcome event how many make up the outcome (they may be read in separate batches).
        A command with no document of its own (a replicated fact) remembers nothing."""
        envelopes = [
            e.value["envelope"]
            for e in self.plan.emissions
            if "command_outcome" in e.value["envelope"]
        ]
        outcome_events = sum(
            1
            for e in self.plan.emissions
            if e.topic.startswith(EVENTS_PREFIX) and e.value["envelope"]["command_outcome"]
        )
        for env in envelopes:
            env["outcome_events"] = outcome_events
        if primary_key is not None:
            primary = self.document(primary_key)
            recent = [*primary.get("recent", []), self.command.command_id]
            primary["recent"] = recent[-RECENT_COMMANDS:]
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
