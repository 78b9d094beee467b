"""Duplicate and out-of-order delivery: every read model part ignores what it already applied.

Decoded events go straight through the projection parts, inside a transaction on the real
Postgres that is rolled back at the end: each event twice (the second changes nothing), then
every older event again after the newest (nothing either). The task rows are also checked
against `commands.task.evolve` folding the same events, and the last test replays a real
tenant's whole history from Kafka, in order and backwards, over the rows the projector built.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import TopicPartition
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg import sql

from aion.settings import Settings
from aion.stack.manager import Stack
from commands.agent import normalise_manifest
from commands.model import Event
from commands.task import TASK_EVENTS, TaskState, evolve
from projections.agents import AgentsProjection
from projections.core import CoreProjection
from projections.enforcements import EnforcementsProjection
from projections.migrate import migrate
from projections.models import ModelsProjection
from projections.policies import PoliciesProjection
from projections.runner import Position, Projection, position
from projections.tasks import TasksProjection
from schemas.codec import Codec
from schemas.topics import TOPICS
from tests.stack.kafka_reading import reader
from tests.stack.test_domain_api import DIGEST
from tests.stack.test_kernel_runs import agent, example, run_task
from tests.stack.test_orchestration import WAIT, new_tenant
from tests.unit.test_task_decider import LIFECYCLE, submitted_event

Cursor = psycopg.Cursor[Any]
Record = tuple[str, dict[str, Any]]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DOMAIN_TABLES = (
    "models",
    "agents",
    "agent_versions",
    "policies",
    "tasks",
    "runs",
    "artifacts",
    "enforcements",
)
ALL_TABLES = ("tenants", "tenant_users", "command_outcomes", *DOMAIN_TABLES)


@pytest.fixture(scope="module")
def conn(stack: Stack, settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    migrate(settings.database)
    with psycopg.connect(settings.database) as connection:
        yield connection


@pytest.fixture()
def cur(conn: psycopg.Connection[Any]) -> Iterator[Cursor]:
    """A cursor in a transaction that is rolled back: the tests leave nothing behind."""
    with conn.transaction(force_rollback=True), conn.cursor() as cursor:
        yield cursor


def record(name: str, tenant: str, local_id: str, version: int, **payload: Any) -> Record:
    """A decoded event as the codec yields it: the envelope and the payload's fields."""
    family = name.split(".")[1]  # aion.<family>.<Record>; runs and artifacts are the task's
    aggregate_type = "task" if family in ("run", "artifact") else family
    envelope = {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{local_id}/{name}/{version}")),
        "event_type": name,
        "command_id": str(uuid.uuid4()),
        "correlation_id": "c",
        "causation_id": "c",
        "tenant_id": tenant,
        "aggregate_type": aggregate_type,
        "aggregate_id": f"{tenant}/{local_id}",
        "aggregate_version": version,
        "occurred_at": T0 + timedelta(seconds=version),
        "actor": "tester",
        "traceparent": None,
        "tracestate": None,
        "command_outcome": True,
    }
    return name, {"envelope": envelope, **payload}


def rejected(tenant: str, aggregate_type: str, local_id: str, version: int) -> Record:
    """A CommandRejected (a higher version than anything: it is ignored by its type)."""
    name, value = record("aion.CommandRejected", tenant, local_id, version)
    value["envelope"]["aggregate_type"] = aggregate_type
    fields = {"command_type": "x", "code": "invalid", "reason": "r", "field": None}
    return name, {**value, **fields, "current_version": version}


def snapshot(cur: Cursor, tenant: str, tables: tuple[str, ...] = DOMAIN_TABLES) -> dict[str, Any]:
    rows = {}
    for table in tables:
        query = sql.SQL("select * from {} where tenant_id = %s").format(sql.Identifier(table))
        rows[table] = sorted((tuple(row) for row in cur.execute(query, (tenant,))), key=repr)
    return rows


def deliver_twice_then_older(
    cur: Cursor, part: Projection, tenant: str, history: list[Record]
) -> dict[str, Any]:
    """Apply each event twice, then every older one after the newest; the rows at the end."""
    at = Position(part.topics[0], 0, 0)
    for name, value in history:
        part.apply(cur, name, value, at)
        once = snapshot(cur, tenant)
        part.apply(cur, name, value, at)
        assert snapshot(cur, tenant) == once, f"{name} delivered twice changed the rows"
    final = snapshot(cur, tenant)
    for name, value in reversed(history[:-1]):
        part.apply(cur, name, value, at)
        assert snapshot(cur, tenant) == final, f"an older {name} changed the rows"
    return final


def one(cur: Cursor, query: str, *params: Any) -> dict[str, Any]:
    cur.execute(query, params)
    assert cur.description is not None
    [row] = cur.fetchall()
    return dict(zip([c.name for c in cur.description], row, strict=True))


def new_tenant_id() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


def test_a_model_registered_twice_is_one_row(cur: Cursor) -> None:
    tenant = new_tenant_id()
    fields = {"tenant_id": tenant, "model_name": "mini", "provider": "local", "kind": "chat"}
    registered = record(
        "aion.model.ModelRegistered",
        tenant,
        "mini",
        1,
        **fields,
        parameters={"dim": "8"},
        description="",
    )
    part = ModelsProjection()
    final = deliver_twice_then_older(cur, part, tenant, [registered])
    assert len(final["models"]) == 1
    part.apply(cur, *rejected(tenant, "model", "mini", 2), Position(part.topics[0], 0, 0))
    assert snapshot(cur, tenant) == final


def test_agent_events_apply_once_and_never_backwards(cur: Cursor) -> None:
    tenant = new_tenant_id()

    def manifest(version: str) -> dict[str, Any]:
        raw = {"agent_name": "a", "version": version, "module_digest": DIGEST, "abi": "reactor"}
        quotas = {"fuel": 10, "memory_mb": 1, "timeout_ms": 10}
        return normalise_manifest({**raw, "quotas": quotas, "labels": {"v": version}})

    history = [
        record("aion.agent.AgentDeployed", tenant, "a", 1, manifest=manifest("1.0.0")),
        record("aion.agent.AgentUpdated", tenant, "a", 2, manifest=manifest("1.1.0")),
        record("aion.agent.AgentRetired", tenant, "a", 3, reason="old"),
    ]
    for _, value in history:
        value["agent_name"] = "a"
    part = AgentsProjection()
    final = deliver_twice_then_older(cur, part, tenant, history)
    row = one(cur, "select * from agents where tenant_id = %s", tenant)
    assert (row["status"], row["agent_version"], row["version"]) == ("retired", "1.1.0", 3)
    assert row["labels"] == {"v": "1.1.0"} and row["retired_reason"] == "old"
    assert len(final["agent_versions"]) == 2
    # A denied deployment and a rejection change nothing.
    at = Position(part.topics[0], 0, 0)
    denied = record(
        "aion.agent.AgentDeploymentRejected",
        tenant,
        "b",
        1,
        agent_name="b",
        reason="no",
        field=None,
    )
    part.apply(cur, *denied, at)
    part.apply(cur, *rejected(tenant, "agent", "a", 4), at)
    assert snapshot(cur, tenant) == final


def test_a_deleted_policy_stays_deleted_when_its_put_comes_again(cur: Cursor) -> None:
    tenant = new_tenant_id()
    cedar = "permit(principal, action, resource);"
    ids = {"tenant_id": tenant, "policy_id": "p"}
    put = {**ids, "cedar": cedar, "description": "", "policy_version": 1}
    history = [
        record("aion.policy.PolicyPut", tenant, "p", 1, **put),
        record("aion.policy.PolicyDeleted", tenant, "p", 2, **ids),
    ]
    deliver_twice_then_older(cur, PoliciesProjection(), tenant, history)
    row = one(cur, "select * from policies where tenant_id = %s", tenant)
    assert (row["status"], row["version"], row["policy_version"]) == ("deleted", 2, 1)


def test_an_enforcement_is_recorded_once_and_nul_does_not_stop_the_projection(
    cur: Cursor,
) -> None:
    tenant = new_tenant_id()
    decided = record(
        "aion.enforcement.EnforcementDecided",
        tenant,
        "e-1",
        1,
        enforcement_id="e-1",
        subject_type="task",
        subject_id=f"{tenant}/t-1",
        action="SubmitTask",
        decision="deny",
        policy_ids=["no"],
        diagnostics=["bad\x00byte"],
        request='{"principal": {"type": "User", "id": "a\\u0000b"}}',
    )
    final = deliver_twice_then_older(cur, EnforcementsProjection(), tenant, [decided])
    assert len(final["enforcements"]) == 1
    row = one(cur, "select * from enforcements where tenant_id = %s", tenant)
    assert (row["subject_id"], row["decision"], row["policy_ids"]) == ("t-1", "deny", ["no"])
    assert row["diagnostics"] == ["bad\ufffdbyte"]
    assert row["request"]["principal"]["id"] == "a\ufffdb"


def task_history(tenant: str, events: list[Event]) -> list[Record]:
    """Events of task t-1 with the versions the write side gives them (one per task event)."""
    history, version = [], 0
    for event in events:
        version += event.type in TASK_EVENTS
        history.append(record(event.type, tenant, "t-1", version, **event.payload))
    return history


def assert_row_is_the_fold(cur: Cursor, tenant: str, events: list[Event]) -> dict[str, Any]:
    folded = TaskState()
    for event in events:
        folded = evolve(folded, event)
    row = one(cur, "select * from tasks where tenant_id = %s and task_id = 't-1'", tenant)
    fields = ("status", "attempt", "run_id", "output_digest", "reason", "enforcement_id")
    assert {f: row[f] for f in fields} == {f: getattr(folded, f) for f in fields}
    assert row["version"] == folded.version
    return row


def test_a_task_run_to_success_applies_each_event_once(cur: Cursor) -> None:
    tenant = new_tenant_id()
    events = [submitted_event(), *(LIFECYCLE[i] for i in (0, 2, 4, 6, 11, 7, 12))]
    assert [e.type.rsplit(".", 1)[1] for e in events] == [
        "TaskSubmitted",
        "TaskAuthorized",
        "TaskScheduled",
        "RunStarted",
        "RunProgress",
        "ArtifactStored",
        "RunSucceeded",
        "TaskSucceeded",
    ]
    final = deliver_twice_then_older(cur, TasksProjection(), tenant, task_history(tenant, events))
    row = assert_row_is_the_fold(cur, tenant, events)
    assert row["status"] == "succeeded" and row["finished_at"] == T0 + timedelta(seconds=8)
    run = one(cur, "select attempt, status, output_digest from runs where tenant_id = %s", tenant)
    assert run == {"attempt": 1, "status": "succeeded", "output_digest": row["output_digest"]}
    assert len(final["runs"]) == len(final["artifacts"]) == 1


def test_late_reports_after_a_cancel_are_recorded_but_the_task_stays_cancelled(
    cur: Cursor,
) -> None:
    tenant = new_tenant_id()
    events = [submitted_event(), LIFECYCLE[0], LIFECYCLE[2], LIFECYCLE[16], LIFECYCLE[4]]
    events += [LIFECYCLE[7], LIFECYCLE[12]]  # RunSucceeded, TaskSucceeded: out of turn
    deliver_twice_then_older(cur, TasksProjection(), tenant, task_history(tenant, events))
    row = assert_row_is_the_fold(cur, tenant, events)
    assert (row["status"], row["output_digest"]) == ("cancelled", None)
    assert row["finished_at"] == T0 + timedelta(seconds=4)  # when it was cancelled
    run = one(cur, "select * from runs where tenant_id = %s", tenant)
    assert run["status"] == "succeeded"  # what the kernel reported, all the same
    at = Position(TasksProjection.topics[0], 0, 0)
    TasksProjection().apply(cur, *rejected(tenant, "task", "t-1", 99), at)
    assert one(cur, "select version from tasks where tenant_id = %s", tenant)["version"] == 7


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(LIFECYCLE), max_size=12))
def test_the_task_row_is_always_the_write_models_fold(
    conn: psycopg.Connection[Any], lifecycle: list[Event]
) -> None:
    tenant = new_tenant_id()
    events = [submitted_event(), *lifecycle]
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        deliver_twice_then_older(cur, TasksProjection(), tenant, task_history(tenant, events))
        assert_row_is_the_fold(cur, tenant, events)


# --- a real tenant's whole history, once more over the projector's rows ------------------------


def tenant_history(settings: Settings, tenant: str) -> list[tuple[Position, str, dict[str, Any]]]:
    """Every event keyed by the tenant or its aggregates, from every events topic, in order."""
    codec = Codec(settings.registry)
    consumer = reader(settings)
    try:
        ends: dict[tuple[str, int], int] = {}
        assigned = []
        for topic in (t.name for t in TOPICS if t.name.startswith("aion.events.")):
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    assigned.append(TopicPartition(topic, p, low))
                    ends[(topic, p)] = high
        consumer.assign(assigned)
        found = []
        deadline = time.monotonic() + 120
        while ends and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1):
                if message.error():
                    continue
                at = position(message)
                key = (message.key() or b"").decode()
                if key == tenant or key.startswith(f"{tenant}/"):
                    found.append((at, *codec.decode(at.topic, message.value() or b"")))
                if at.offset + 1 >= ends.get((at.topic, at.partition), 0):
                    ends.pop((at.topic, at.partition), None)
        assert not ends, f"events partitions not read to their end: {ends}"
        return found
    finally:
        consumer.close()


def wait_for_projector(
    conn: psycopg.Connection[Any], history: list[tuple[Position, str, dict[str, Any]]]
) -> None:
    needed: dict[tuple[str, int], int] = {}
    for at, _, _ in history:
        needed[(at.topic, at.partition)] = max(needed.get((at.topic, at.partition), 0), at.offset)
    deadline = time.monotonic() + 60
    while True:
        with conn.cursor() as cur:
            cur.execute(
                "select topic, partition, next_offset from projection_checkpoints"
                " where projection = 'core'"
            )
            done = {(t, p): o for t, p, o in cur.fetchall()}
        conn.commit()
        if all(done.get(k, 0) > offset for k, offset in needed.items()):
            return
        assert time.monotonic() < deadline, "the projector did not catch up within 60 s"
        time.sleep(0.2)


def test_a_real_tenants_history_replayed_in_order_and_backwards_changes_nothing(
    api: httpx.Client, settings: Settings, conn: psycopg.Connection[Any]
) -> None:
    tenant = new_tenant(api)
    t = f"/v1/tenants/{tenant}"
    model = {"model_name": "m", "provider": "local", "kind": "chat"}
    assert api.post(f"{t}/models", json=model, headers=WAIT).status_code == 201
    assert agent(api, tenant, "echo", example("echo")).status_code == 201
    allow = {"cedar": "permit(principal, action, resource);"}
    assert api.put(f"{t}/policies/p", json=allow, headers=WAIT).status_code == 200
    assert api.delete(f"{t}/policies/p", headers=WAIT).status_code == 200
    run_task(api, settings, tenant, "echo", {"n": 1}, "TaskSucceeded")

    history = tenant_history(settings, tenant)
    kinds = {name.rsplit(".", 1)[1] for _, name, _ in history}
    assert {"ModelRegistered", "AgentDeployed", "PolicyDeleted", "RunSucceeded"} <= kinds
    assert "EnforcementDecided" in kinds
    wait_for_projector(conn, history)
    core = CoreProjection()
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        built = snapshot(cur, tenant, ALL_TABLES)
        assert built["tasks"] and built["runs"] and built["artifacts"] and built["enforcements"]
        for at, name, value in history:
            core.apply(cur, name, value, at)
        assert snapshot(cur, tenant, ALL_TABLES) == built
        for at, name, value in reversed(history):
            core.apply(cur, name, value, at)
        assert snapshot(cur, tenant, ALL_TABLES) == built
