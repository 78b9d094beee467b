"""The write side's pure core over a dict of documents, as the command processor drives it.

Shared by the planner's and the orchestrator's tests. A command is planned by its stage (the
tenant stage or the task stage, decision 56), and the internal commands it sends to the other
stage are planned in turn, in order, until none is left: ``Store.run`` returns what the whole
cascade emitted but those internal commands (``Store.internal`` keeps them). Every emission is
also encoded with its Avro schema, so a plan the broker would refuse fails here first.
"""

from __future__ import annotations

import io
import json
from collections import deque
from typing import Any

import fastavro

from commands.model import Command, scoped_id
from schemas import catalog
from schemas.topics import COMMANDS, TASKS, command_topic
from streams.plan import Plan
from streams.task_stage import plan_task_command
from streams.tenant_stage import plan_tenant_command, scheduler_key

NOW = 1_700_000_000_000
DIGEST = "sha256:" + "ab" * 32
MODULE_FACT = {("module", scoped_id("acme", DIGEST)): {"status": "stored", "size": 8}}


class Store:
    """The processor's table, as a dict of JSON documents; applies plans like the agent does."""

    def __init__(self) -> None:
        self.documents: dict[str, str] = {}
        self.count = 0
        self.now = NOW  # each command is a millisecond after the last, unless it says when
        self.largest = 0  # the largest document or emission seen, in bytes (inputs aside)
        self.internal: list[str] = []  # the internal commands of the last run, in order

    def read(self, key: str) -> dict[str, Any] | None:
        raw = self.documents.get(key)
        return json.loads(raw) if raw else None

    def run(
        self, command_type: str, aggregate_id: str, payload: dict[str, Any], **env: Any
    ) -> Plan:
        self.count += 1
        self.now = int(env.pop("issued_at", self.now + 1))
        env = {"issued_at": self.now, **env}
        command = Command(command_type, envelope(aggregate_id, self.count, **env), payload)
        return self.cascade(command)

    def plan(self, command: Command) -> Plan:
        if command_topic(command.type) == TASKS:
            return plan_task_command(command, self.read, MODULE_FACT, grace_ms=1000)
        return plan_tenant_command(command, self.read, MODULE_FACT, grace_ms=1000)

    def cascade(self, first: Command) -> Plan:
        """The command, then every internal command it caused, each stored before the next."""
        combined = Plan()
        self.internal = []
        pending = deque([first])
        while pending:
            command = pending.popleft()
            plan = self.plan(command)
            if command is first:
                combined.duplicate = plan.duplicate
            self.store(plan)
            combined.writes.update(plan.writes)
            for emission in plan.emissions:
                self.largest = max(self.largest, encode(emission.record, emission.value))
                if emission.topic in (COMMANDS, TASKS):
                    self.internal.append(emission.record.rsplit(".", 1)[1])
                    body = {k: v for k, v in emission.value.items() if k != "envelope"}
                    pending.append(Command(emission.record, emission.value["envelope"], body))
                else:
                    combined.emissions.append(emission)
        return combined

    def store(self, plan: Plan) -> None:
        for key, document in plan.writes.items():
            if document is None:
                self.documents.pop(key, None)
            else:
                self.documents[key] = json.dumps(document)
                self.largest = max(self.largest, len(self.documents[key]))


def envelope(aggregate_id: str, n: int, **extra: Any) -> dict[str, Any]:
    env = {
        "command_id": f"cmd-{n}",
        "correlation_id": f"cmd-{n}",
        "tenant_id": "acme",
        "aggregate_id": aggregate_id,
        "expected_version": None,
        "issued_at": NOW + n,
        "actor": "alice",
        "traceparent": None,
        "tracestate": None,
    }
    env.update(extra)
    return env


def encode(record: str, value: dict[str, Any]) -> int:
    """The record's Avro encoding's size (it raises if the value does not fit the schema)."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, catalog.record(record).parsed, value)
    return out.tell()


def records(plan: Plan) -> list[str]:
    return [e.record.rsplit(".", 1)[1] for e in plan.emissions]


def manifest(name: str = "echo", **quotas: Any) -> dict[str, Any]:
    return {
        "agent_name": name,
        "version": "1.0.0",
        "module_digest": DIGEST,
        "abi": "reactor",
        "quotas": {"fuel": 1000, "memory_mb": 16, "timeout_ms": 1000, **quotas},
    }


def tenant(store: Store, **limits: int) -> None:
    payload = {"tenant_id": "acme", "display_name": "Acme", "limits": limits or None}
    assert records(store.run("aion.tenant.CreateTenant", "acme", payload)) == ["TenantCreated"]
    user = {"user_id": "alice", "display_name": "Alice", "roles": ["operator"]}
    assert records(store.run("aion.tenant.AddUser", "acme", user)) == ["UserAdded"]


def deploy(store: Store, name: str = "echo", **quotas: Any) -> Plan:
    payload = {"manifest": manifest(name, **quotas)}
    return store.run("aion.agent.DeployAgent", scoped_id("acme", name), payload)


def submit(store: Store, task_id: str, agent: str = "echo", **fields: Any) -> Plan:
    payload = {"task_id": task_id, "agent_name": agent, "input": '{"n": 1}', **fields}
    return store.run("aion.task.SubmitTask", scoped_id("acme", task_id), payload)


def report(store: Store, kind: str, task_id: str, attempt: int = 1, **fields: Any) -> Plan:
    payload = {"task_id": task_id, "run_id": f"{task_id}.{attempt}", **fields}
    if kind == "RunStarted":
        payload["attempt"] = attempt
    return store.run(f"aion.run.Record{kind}", scoped_id("acme", task_id), payload)


def succeeded(store: Store, task_id: str, attempt: int = 1) -> Plan:
    fields = {"output_digest": "sha256:0", "output_bytes": 2, "fuel_used": 5, "duration_ms": 3}
    return report(store, "RunSucceeded", task_id, attempt, **fields)


def failed(store: Store, task_id: str, attempt: int = 1) -> Plan:
    fields = {"reason": "trap", "message": "unreachable", "fuel_used": 5, "duration_ms": 3}
    return report(store, "RunFailed", task_id, attempt, **fields)


def counters(store: Store) -> dict[str, int]:
    document = store.read(scheduler_key("acme")) or {}
    state = document.get("state") or {}
    return {phase: state.get(phase, 0) for phase in ("queued", "active", "retrying")}


def tick(store: Store, at_ms: int) -> Plan:
    return store.run("aion.task.Tick", "acme", {"due_ms": at_ms}, issued_at=at_ms)


def task_status(store: Store, task_id: str) -> str:
    document = store.read(f"task:{scoped_id('acme', task_id)}")
    assert document is not None
    return str(document["state"]["status"])


def put_policy(store: Store, policy_id: str, cedar: str) -> Plan:
    payload = {"policy_id": policy_id, "cedar": cedar}
    return store.run("aion.policy.PutPolicy", scoped_id("acme", policy_id), payload)
