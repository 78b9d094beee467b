"""The command processor's pure core: decide, enforce, orchestrate, over a dict of documents.

Every emission is also encoded with its Avro schema, so a plan the broker would refuse fails
here first.
"""

from __future__ import annotations

import json

import pytest

from commands.model import Command, scoped_id
from schemas.topics import DISPATCH, events_topic
from streams.plan import policies_key
from streams.task_stage import plan_task_command
from streams.tenant_stage import plan_tenant_command, scheduler_key
from tests.unit.planning import (
    DIGEST,
    MODULE_FACT,
    NOW,
    Store,
    counters,
    deploy,
    envelope,
    failed,
    manifest,
    put_policy,
    records,
    report,
    submit,
    succeeded,
    task_status,
    tenant,
    tick,
)


@pytest.fixture
def store() -> Store:
    s = Store()
    tenant(s)
    return s


# --- enforcement ------------------------------------------------------------------------------


def test_a_deployment_is_decided_by_policy_before_it_is_recorded(store: Store) -> None:
    plan = deploy(store)
    assert records(plan) == ["EnforcementDecided", "AgentDeployed"]
    decided = plan.emissions[0]
    assert (decided.topic, decided.key) == (events_topic("enforcement"), "acme/echo")
    assert decided.value["decision"] == "allow"
    assert decided.value["policy_ids"] == ["platform-default-permit"]
    request = json.loads(decided.value["request"])
    assert request["principal"] == {"type": "User", "id": "acme/alice"}
    roles = next(e for e in request["entities"] if e["uid"]["type"] == "User")["parents"]
    assert {"type": "Role", "id": "operator"} in roles


def test_a_tenant_forbid_policy_rejects_a_deployment_and_records_nothing_else(
    store: Store,
) -> None:
    cedar = (
        'forbid(principal, action == Action::"DeployAgent", resource) when { resource.fuel > 500 };'
    )
    plan = put_policy(store, "small-agents", cedar)
    assert records(plan) == ["PolicyPut"]
    assert store.read(policies_key("acme"))["state"]["policies"] == {"small-agents": cedar}  # type: ignore[index]
    plan = deploy(store)
    assert records(plan) == ["EnforcementDecided", "AgentDeploymentRejected"]
    assert plan.emissions[0].value["policy_ids"] == ["small-agents"]
    assert "small-agents" in plan.emissions[1].value["reason"]
    assert store.read("agent:acme/echo")["state"]["status"] == "absent"  # type: ignore[index]
    # Deleting the policy lets the same deployment through.
    store.run("aion.policy.DeletePolicy", "acme/small-agents", {"policy_id": "small-agents"})
    assert records(deploy(store)) == ["EnforcementDecided", "AgentDeployed"]


def test_a_suspended_tenants_task_is_refused_before_any_policy(store: Store) -> None:
    put_policy(store, "allow-all", "permit(principal, action, resource);")
    deploy(store)
    store.run("aion.tenant.SuspendTenant", "acme", {"reason": "billing"})
    # The decider refuses a suspended tenant's commands before any policy is asked.
    assert records(submit(store, "t-1")) == ["CommandRejected"]


def test_a_denied_task_is_submitted_then_rejected_and_never_scheduled(store: Store) -> None:
    deploy(store)
    put_policy(
        store,
        "no-big-inputs",
        'forbid(principal, action == Action::"SubmitTask", resource) '
        "when { resource.input_bytes > 10 };",
    )
    plan = submit(store, "t-1", input='{"text": "far too long"}')
    assert records(plan) == ["TaskSubmitted", "EnforcementDecided", "TaskRejected"]
    assert plan.emissions[2].value["reason"] == "SubmitTask denied by policy no-big-inputs"
    assert task_status(store, "t-1") == "rejected"
    assert counters(store) == {"queued": 0, "active": 0, "retrying": 0}
    # The outcome is two events (the verdict is a consequence); each event of the command
    # says so, for a reader that gets the submission in one batch and the denial in the next.
    envelopes = [e.value["envelope"] for e in plan.emissions]
    assert [(env["command_outcome"], env["outcome_events"]) for env in envelopes] == [
        (True, 2), (False, 2), (True, 2),
    ]  # fmt: skip


# --- orchestration ----------------------------------------------------------------------------


def test_an_allowed_task_is_authorized_scheduled_and_dispatched(store: Store) -> None:
    deploy(store)
    plan = submit(store, "t-1", labels={"team": "a"})
    assert records(plan) == [
        "TaskSubmitted", "EnforcementDecided", "TaskAuthorized", "TaskScheduled", "DispatchRun",
    ]  # fmt: skip
    authorized = plan.emissions[2].value
    assert authorized["enforcement_id"] == plan.emissions[1].value["enforcement_id"]
    dispatch = plan.emissions[4]
    assert (dispatch.topic, dispatch.key) == (DISPATCH, "acme/t-1.1")
    assert dispatch.value["input"] == '{"n": 1}'
    assert dispatch.value["manifest"]["quotas"]["fuel"] == 1000
    assert task_status(store, "t-1") == "scheduled"
    ids = [e.value["envelope"]["event_id"] for e in plan.emissions]
    assert len(set(ids)) == len(ids)
    versions = [e.value["envelope"]["aggregate_version"] for e in plan.emissions if
                e.topic == events_topic("task")]  # fmt: skip
    assert versions == [1, 2, 3]
    # Only the task's own events are the command's outcome; the verdict is a consequence, and
    # so is the scheduling, which admission decided (decision 56) in a command of its own.
    assert [e.value["envelope"]["command_outcome"] for e in plan.emissions] == [
        True, False, True, False, False,
    ]  # fmt: skip
    assert store.internal == ["AdmitTask", "ScheduleRun"]
    submission = {e.value["envelope"]["command_id"] for e in plan.emissions[:3]}
    assert len(submission) == 1
    # The dispatch is not on an events topic: the outcome a reader waits for is two events.
    assert [e.value["envelope"]["outcome_events"] for e in plan.emissions] == [2, 2, 2, 0, 0]


def test_a_full_tenant_queues_and_a_finished_run_admits_the_next() -> None:
    limited = Store()
    tenant(limited, max_concurrent_tasks=1)
    deploy(limited)
    deploy(limited, "other")
    assert records(submit(limited, "t-1"))[-1] == "DispatchRun"
    assert records(submit(limited, "t-2", agent="other"))[-1] == "TaskAuthorized"
    assert task_status(limited, "t-2") == "authorized"
    assert records(report(limited, "RunStarted", "t-1", attempt=1, worker="w")) == ["RunStarted"]
    plan = succeeded(limited, "t-1")
    assert records(plan) == ["RunSucceeded", "TaskSucceeded", "TaskScheduled", "DispatchRun"]
    assert plan.emissions[3].key == "acme/t-2.1"
    outcome = [e.value["envelope"]["command_outcome"] for e in plan.emissions]
    assert outcome == [True, True, False, False]  # t-2's scheduling is a consequence
    assert (task_status(limited, "t-1"), task_status(limited, "t-2")) == ("succeeded", "scheduled")


def test_a_failed_run_is_retried_after_its_backoff_then_fails(store: Store) -> None:
    deploy(store, max_retries=1, retry_backoff_ms=500)
    submit(store, "t-1")
    plan = failed(store, "t-1")
    assert records(plan) == ["RunFailed", "TaskRetryScheduled"]
    retry_at = plan.emissions[1].value["retry_at_ms"]
    due = store.read(scheduler_key("acme"))["due_ms"]  # type: ignore[index]
    assert retry_at <= due < retry_at + 1000  # the first whole second at or after it
    assert records(tick(store, due - 1)) == []
    plan = tick(store, due)
    assert records(plan) == ["TaskScheduled", "DispatchRun"]
    assert plan.emissions[1].key == "acme/t-1.2"
    plan = failed(store, "t-1", attempt=2)
    assert records(plan) == ["RunFailed", "TaskFailed"]
    assert "after 2 attempts" in plan.emissions[1].value["reason"]
    assert task_status(store, "t-1") == "failed"


def test_a_late_report_of_an_earlier_attempt_is_recorded_but_changes_nothing(
    store: Store,
) -> None:
    deploy(store, max_retries=1, retry_backoff_ms=0)
    submit(store, "t-1")
    assert records(failed(store, "t-1")) == [
        "RunFailed", "TaskRetryScheduled", "TaskScheduled", "DispatchRun",
    ]  # fmt: skip
    assert records(succeeded(store, "t-1", attempt=1)) == ["RunSucceeded"]
    assert task_status(store, "t-1") == "scheduled"


def test_a_silent_worker_is_given_up_and_a_deadline_times_a_task_out(store: Store) -> None:
    deploy(store)
    submit(store, "t-1")
    submit(store, "t-2", deadline_ms=NOW + 60_000)
    report(store, "RunStarted", "t-1", attempt=1, worker="w")
    due = store.read(scheduler_key("acme"))["due_ms"]  # type: ignore[index]
    plan = tick(store, due)
    # t-1 is given up, which frees the agent's only slot for t-2.
    assert records(plan) == ["RunFailed", "TaskFailed", "TaskScheduled", "DispatchRun"]
    assert plan.emissions[0].value["reason"] == "worker_lost"
    assert plan.emissions[3].key == "acme/t-2.1"
    plan = tick(store, NOW + 60_000)
    assert records(plan) == ["TaskTimedOut"]
    assert task_status(store, "t-2") == "timed_out"


def test_cancelling_a_queued_task_frees_nothing_twice(store: Store) -> None:
    deploy(store)
    submit(store, "t-1")
    plan = store.run("aion.task.CancelTask", "acme/t-1", {"reason": "changed my mind"})
    assert records(plan) == ["TaskCancelled"]
    assert counters(store) == {"queued": 0, "active": 0, "retrying": 0}
    again = store.run("aion.task.CancelTask", "acme/t-1", {"reason": "again"})
    assert records(again) == ["CommandRejected"]


# --- the processor's guarantees ---------------------------------------------------------------


def test_a_redelivered_command_is_recognised_and_a_replanned_one_is_identical(
    store: Store,
) -> None:
    deploy(store)
    command = Command(
        "aion.task.SubmitTask",
        envelope("acme/t-9", 99),
        {"task_id": "t-9", "agent_name": "echo", "input": "{}"},
    )
    first = plan_task_command(command, store.read, MODULE_FACT)
    second = plan_task_command(command, store.read, MODULE_FACT)
    assert first.emissions == second.emissions  # a crash before saving replays the same
    for key, document in first.writes.items():
        store.documents[key] = json.dumps(document)
    assert list(first.writes)[-1] == "task:acme/t-9"  # the command's own document last
    assert plan_task_command(command, store.read, MODULE_FACT).duplicate


def test_an_unknown_command_type_is_a_key_error() -> None:
    command = Command("aion.task.Explode", envelope("acme/t-1", 1), {})
    with pytest.raises(KeyError):
        plan_task_command(command, lambda key: None)


def test_a_module_importing_what_is_not_granted_is_refused_at_deploy(store: Store) -> None:
    fact = {
        ("module", scoped_id("acme", DIGEST)): {
            "status": "stored",
            "size": 8,
            "import_problem": "imports env.socket, which is not granted",
        }
    }
    command = Command("aion.agent.DeployAgent", envelope("acme/echo", 50), {"manifest": manifest()})
    plan = plan_tenant_command(command, store.read, fact)
    assert records(plan) == ["CommandRejected"]
    rejected = plan.emissions[0].value
    assert (rejected["code"], rejected["field"]) == ("invalid", "/manifest/module_digest")
    assert "env.socket" in rejected["reason"]
