"""A whole batch applied at once builds the rows that event after event builds.

The parts fold a batch in memory (projections/bulk.py): rows are read once, every event of the
batch applied to them in order, the difference written back. These tests give one batch what
the guard tests (test_read_model_guards.py) give one event at a time — every event twice,
then the older ones again after the newest, shuffled duplicates, several events of one
aggregate and one command — and compare the rows with the one-at-a-time result, on the real
Postgres in transactions that are rolled back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from aion.settings import Settings
from aion.stack.manager import Stack
from commands.model import Event
from projections.core import CoreProjection
from projections.migrate import migrate
from projections.runner import Delivered, Position
from projections.tasks import TasksProjection
from projections.tenants import TenantsProjection
from tests.stack.test_read_model_guards import (
    ALL_TABLES,
    Record,
    assert_row_is_the_fold,
    new_tenant_id,
    record,
    snapshot,
    task_history,
)
from tests.unit.test_task_decider import LIFECYCLE, submitted_event, task_rejected

Cursor = psycopg.Cursor[Any]


@pytest.fixture(scope="module")
def conn(stack: Stack, settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    migrate(settings.database)
    with psycopg.connect(settings.database) as connection:
        yield connection


def delivered(history: list[Record], topic: str) -> list[Delivered]:
    """Events with distinct positions, as a batch from Kafka has them (on a partition no
    topic has, so that the audit log's rows by position are these events' own)."""
    partition = random.randrange(10_000, 2**31)
    return [(name, value, Position(topic, partition, i)) for i, (name, value) in enumerate(history)]


def one_at_a_time(cur: Cursor, batch: list[Delivered], tenant: str) -> dict[str, Any]:
    core = CoreProjection()
    for name, value, at in batch:
        core.apply(cur, name, value, at)
    return snapshot(cur, tenant, ALL_TABLES)


def in_one_batch(cur: Cursor, batch: list[Delivered], tenant: str) -> dict[str, Any]:
    CoreProjection().apply_batch(cur, batch)
    return snapshot(cur, tenant, ALL_TABLES)


def same_either_way(
    conn: psycopg.Connection[Any], batch: list[Delivered], tenant: str
) -> dict[str, Any]:
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        expected = one_at_a_time(cur, batch, tenant)
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        assert in_one_batch(cur, batch, tenant) == expected
    return expected


def twice_then_older(history: list[Record]) -> list[Record]:
    """Each event twice, then every older one again after the newest."""
    doubled = [event for event in history for event in (event, event)]
    return doubled + list(reversed(history[:-1]))


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(LIFECYCLE), max_size=12), st.randoms(use_true_random=False))
def test_a_task_history_in_one_batch_is_the_same_as_event_by_event(
    conn: psycopg.Connection[Any], lifecycle: list[Event], shuffler: random.Random
) -> None:
    tenant = new_tenant_id()
    events = [submitted_event(), *lifecycle]
    history = task_history(tenant, events)
    topic = TasksProjection.topics[0]
    same_either_way(conn, delivered(twice_then_older(history), topic), tenant)
    shuffled = history + history
    shuffler.shuffle(shuffled)
    same_either_way(conn, delivered(shuffled, topic), tenant)
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        in_one_batch(cur, delivered(twice_then_older(history), topic), tenant)
        assert_row_is_the_fold(cur, tenant, events)


def tenant_history(tenant: str) -> list[Record]:
    """A tenant whose users come, change and go, one of them twice, all within one batch."""

    def event(name: str, version: int, **payload: Any) -> Record:
        found_name, value = record(f"aion.tenant.{name}", tenant, tenant, version, **payload)
        value["envelope"]["aggregate_id"] = tenant  # a tenant's aggregate id is the tenant's
        return found_name, {**value, "tenant_id": tenant}

    def user(name: str, version: int, user_id: str, **payload: Any) -> Record:
        return event(name, version, user_id=user_id, **payload)

    return [
        event("TenantCreated", 1, display_name="T", labels={"a": "b"}, limits={}),
        user("UserAdded", 2, "ana", display_name="Ana", roles=["viewer"]),
        user("UserAdded", 3, "bo", display_name="Bo", roles=["viewer"]),
        user("RolesAssigned", 4, "ana", roles=["admin", "viewer"]),
        event("TenantSuspended", 5, reason="unpaid\x00bill"),
        user("UserRemoved", 6, "bo"),
        event("TenantReinstated", 7),
        user("UserAdded", 8, "bo", display_name="Bo again", roles=["developer"]),
        user("UserRemoved", 9, "ana"),
    ]


def test_a_tenants_users_coming_and_going_in_one_batch(conn: psycopg.Connection[Any]) -> None:
    tenant = new_tenant_id()
    history = tenant_history(tenant)
    batch = delivered(twice_then_older(history), TenantsProjection.topics[0])
    rows = same_either_way(conn, batch, tenant)
    assert [(r[1], r[2]) for r in rows["tenant_users"]] == [("bo", "Bo again")]
    [tenant_row] = rows["tenants"]
    assert "active" in tenant_row and 9 in tenant_row
    # Split anywhere into two batches (two transactions of the runner): the same rows.
    for cut in range(1, len(batch)):
        with conn.transaction(force_rollback=True), conn.cursor() as cur:
            core = CoreProjection()
            core.apply_batch(cur, batch[:cut])
            core.apply_batch(cur, batch[cut:])
            assert snapshot(cur, tenant, ALL_TABLES) == rows, f"split at {cut}"


def test_outcomes_of_commands_with_several_events_in_one_batch(
    conn: psycopg.Connection[Any],
) -> None:
    """The audit log has one row per position; an outcome collects its command's event ids
    once each, and a rejection wins."""
    tenant = new_tenant_id()
    history = tenant_history(tenant)[:4]
    for _, value in history[1:3]:  # two events of one command
        value["envelope"]["command_id"] = "c-shared"
    name, value = record("aion.CommandRejected", tenant, tenant, 5)
    value["envelope"].update(aggregate_type="tenant", aggregate_id=tenant, command_id="c-shared")
    rejection = (name, {**value, "command_type": "x", "code": "invalid", "reason": "r",
                        "field": None, "current_version": 4})  # fmt: skip
    batch = delivered([*history, rejection], TenantsProjection.topics[0])
    batch += batch  # redelivered at the same positions
    same_either_way(conn, batch, tenant)
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        CoreProjection().apply_batch(cur, batch)
        cur.execute(
            "select status, code, cardinality(event_ids) from command_outcomes"
            " where command_id = 'c-shared'"
        )
        assert cur.fetchall() == [("rejected", "invalid", 3)]
        cur.execute("select count(*) from audit_log where tenant_id = %s", (tenant,))
        assert cur.fetchone() == (5,)


def test_an_outcome_split_across_batches_is_decided_only_when_complete(
    conn: psycopg.Connection[Any],
) -> None:
    """A denied task's submission and its denial may reach the projector in two batches:
    between them the outcome row exists but is not decided (the API answers pending), then it
    is the rejection, not an acceptance that turns into one."""
    tenant = new_tenant_id()
    decided = (
        "select status from command_outcomes where command_id = 'c-split'"
        " and cardinality(event_ids) >= outcome_events"
    )
    submitted, denied = task_history(tenant, [submitted_event(), task_rejected()])
    for _, value in (submitted, denied):
        value["envelope"].update(command_id="c-split", outcome_events=2)
    first, second = delivered([submitted, denied], TasksProjection.topics[0])
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        CoreProjection().apply_batch(cur, [first])
        cur.execute(decided)
        assert cur.fetchall() == []
        CoreProjection().apply_batch(cur, [second])
        cur.execute(decided)
        assert cur.fetchall() == [("rejected",)]
