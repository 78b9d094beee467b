"""The two keyed stages (decision 56) through the command processor's own planners.

A task is decided on aion.tasks by its own writer, against facts the tenant stage replicated;
admission stays on the tenant's partition. These tests drive each stage's planner directly
where the message between them matters (redelivered, stale or out of turn), and the whole
cascade (``tests.unit.planning.Store``) where the rule spans both.
"""

from __future__ import annotations

import json
from typing import Any

from commands.admission import job_key
from commands.model import Command, scoped_id
from schemas.topics import COMMANDS, TASKS
from streams.plan import fact_key
from streams.task_stage import plan_task_command
from streams.tenant_stage import plan_tenant_command
from tests.unit.planning import (
    MODULE_FACT,
    Store,
    counters,
    deploy,
    envelope,
    manifest,
    put_policy,
    records,
    submit,
    succeeded,
    task_status,
    tenant,
)


def limited(**limits: int) -> Store:
    store = Store()
    tenant(store, **limits)
    return store


def internal(store: Store, record: str, aggregate_id: str, **payload: Any) -> Command:
    store.count += 1
    return Command(record, envelope(aggregate_id, store.count, issued_at=store.now), payload)


def test_every_change_of_a_tenant_agent_or_policy_is_replicated_to_the_task_stage() -> None:
    store = limited(max_concurrent_tasks=3)
    tenant_fact = store.read(fact_key("tenant", "acme"))
    assert tenant_fact is not None and tenant_fact["state"]["limits"]["max_concurrent_tasks"] == 3
    deploy(store)
    agent = store.read(fact_key("agent", scoped_id("acme", "echo")))
    assert agent is not None and agent["state"]["status"] == "deployed"
    put_policy(store, "no-echo", "forbid(principal, action, resource) when { true };")
    policies = store.read(fact_key("policies", "acme"))
    assert policies is not None and "no-echo" in policies["state"]["policies"]
    # The task stage decides against the replica: the new policy denies at once.
    assert records(submit(store, "t-1"))[-1] == "TaskRejected"


def test_fact_messages_go_to_every_partition_of_the_task_topic() -> None:
    store = limited()
    command = Command(
        "aion.agent.DeployAgent",
        envelope("acme/echo", 90, issued_at=store.now),
        {"manifest": manifest()},
    )
    plan = plan_tenant_command(command, store.read, MODULE_FACT, task_partitions=6)
    facts = [e for e in plan.emissions if e.record == "aion.facts.ReplicateFact"]
    assert [e.partition for e in facts] == list(range(6))
    assert {e.topic for e in facts} == {TASKS}
    ids = {e.value["envelope"]["command_id"] for e in facts}
    assert len(ids) == 6  # each partition's copy is its own command


def test_a_task_of_an_agent_retired_while_it_waited_fails_with_the_reason() -> None:
    store = limited(max_concurrent_tasks=1)
    deploy(store)
    submit(store, "t-1")
    submit(store, "t-2")
    retired = store.run("aion.agent.RetireAgent", scoped_id("acme", "echo"), {})
    assert records(retired)[0] == "AgentRetired"
    plan = succeeded(store, "t-1")
    assert "DispatchRun" not in records(plan)
    assert task_status(store, "t-2") == "failed"
    failure = next(e for e in plan.emissions if e.record.endswith("TaskFailed"))
    assert failure.value["reason"] == "agent echo is retired, not deployed"
    assert counters(store) == {"queued": 0, "active": 0, "retrying": 0}
    assert store.read(job_key("acme", "t-2")) is None


def test_a_schedule_for_a_task_that_ended_meanwhile_frees_its_slot() -> None:
    store = limited(max_concurrent_tasks=1)
    deploy(store)
    submit(store, "t-1")
    store.run("aion.task.CancelTask", "acme/t-1", {"reason": "changed my mind"})
    assert counters(store) == {"queued": 0, "active": 0, "retrying": 0}
    # A ScheduleRun that was on its way when the task was cancelled: it is answered.
    late = internal(store, "aion.admission.ScheduleRun", "acme/t-1", task_id="t-1", attempt=2)
    plan = plan_task_command(late, store.read, MODULE_FACT)
    assert [e.record for e in plan.emissions] == ["aion.admission.SettleTask"]
    assert plan.emissions[0].topic == COMMANDS and plan.emissions[0].key == "acme"
    assert plan.emissions[0].value["outcome"] == "ended"


def test_a_redelivered_admission_request_admits_nothing_twice() -> None:
    store = limited(max_concurrent_tasks=5)
    deploy(store)
    submit(store, "t-1")
    assert counters(store) == {"queued": 0, "active": 1, "retrying": 0}
    again = internal(
        store,
        "aion.admission.AdmitTask",
        "acme",
        task_id="t-1",
        agent_name="echo",
        deadline_ms=None,
    )
    plan = plan_tenant_command(again, store.read, MODULE_FACT)
    assert [e.record for e in plan.emissions] == []
    store.store(plan)
    assert counters(store) == {"queued": 0, "active": 1, "retrying": 0}


def test_a_settlement_about_an_earlier_attempt_frees_nothing() -> None:
    store = limited(max_concurrent_tasks=1)
    deploy(store, max_retries=2, retry_backoff_ms=0)
    submit(store, "t-1")
    store.run(
        "aion.run.RecordRunFailed",
        scoped_id("acme", "t-1"),
        {"task_id": "t-1", "run_id": "t-1.1", "reason": "trap", "message": "x"}
        | {"fuel_used": 1, "duration_ms": 1},
    )
    assert task_status(store, "t-1") == "scheduled"  # attempt 2, its retry due at once
    stale = internal(
        store,
        "aion.admission.SettleTask",
        "acme",
        task_id="t-1",
        attempt=1,
        outcome="retry",
        retry_at_ms=store.now,
    )
    store.store(plan_tenant_command(stale, store.read, MODULE_FACT))
    assert counters(store) == {"queued": 0, "active": 1, "retrying": 0}


def test_a_task_command_produced_to_the_tenant_topic_is_forwarded_unchanged() -> None:
    store = limited()
    payload = {"task_id": "t-1", "agent_name": "echo", "input": "{}"}
    command = Command("aion.task.SubmitTask", envelope("acme/t-1", 77), payload)
    plan = plan_tenant_command(command, store.read, MODULE_FACT)
    (forwarded,) = plan.emissions
    assert (forwarded.topic, forwarded.key, forwarded.record) == (TASKS, "acme/t-1", command.type)
    assert forwarded.value == {"envelope": command.envelope, **payload}
    assert plan.writes == {}


def test_no_job_outlives_its_task() -> None:
    store = limited(max_concurrent_tasks=2)
    deploy(store)
    for n in range(4):
        submit(store, f"t-{n}")
    store.run("aion.task.CancelTask", "acme/t-3", {"reason": "queued"})
    for n in range(3):
        succeeded(store, f"t-{n}")
    jobs = [key for key in store.documents if key.startswith("job:")]
    assert jobs == []
    state = json.loads(store.documents["scheduler:acme"])["state"]
    assert (state["queued"], state["active"]) == (0, 0)
