"""Enforcement and orchestration end to end: HTTP in, Kafka events and kernel dispatches out.

Here the test plays the kernel workers' part, through the path they use (``streams.run_reports``:
report commands on ``aion.tasks``), so the real kernel worker is stopped for this module
(``tests/stack/test_kernel_runs.py`` runs it for real).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from aion.settings import Settings
from schemas.topics import COMMANDS, DISPATCH, events_topic, producer_config
from streams.run_reports import Run, RunReporter
from tests.conftest import AionProcesses
from tests.stack.kafka_reading import Records, has, names, records_until
from tests.stack.test_domain_api import ECHO, WASM, manifest
from tests.stack.test_tenants_api import assert_problem, new_tenant_id

WAIT = {"Prefer": "wait=20"}
TASKS = events_topic("task")


@pytest.fixture(scope="module", autouse=True)
def without_kernel_workers(processes: AionProcesses) -> Iterator[None]:
    processes.stop_role("kernel")
    yield
    processes.start_role("kernel")


@pytest.fixture(scope="module")
def reporter(settings: Settings) -> Iterator[RunReporter]:
    reporter = RunReporter(settings.kafka, settings.registry, worker="test-kernel")
    yield reporter
    reporter.close()  # its reports delivered, its delivery thread ended


def new_tenant(api: httpx.Client, **limits: int) -> str:
    tenant = new_tenant_id()
    body: dict[str, Any] = {"tenant_id": tenant, "display_name": "Orchestrated"}
    if limits:
        body["limits"] = limits
    assert api.post("/v1/tenants", json=body, headers=WAIT).status_code == 201
    uploaded = api.post(f"/v1/tenants/{tenant}/modules", content=ECHO, headers=WASM)
    assert uploaded.status_code in (200, 201), uploaded.text
    return tenant


def deploy(api: httpx.Client, tenant: str, name: str = "echo", **quotas: int) -> None:
    body = manifest(name, quotas={"fuel": 1_000_000, "memory_mb": 64, "timeout_ms": 500, **quotas})
    deployed = api.post(f"/v1/tenants/{tenant}/agents", json={"manifest": body}, headers=WAIT)
    assert deployed.status_code == 201, deployed.text


def submit(api: httpx.Client, tenant: str, task_id: str, **fields: Any) -> httpx.Response:
    body = {"task_id": task_id, "agent_name": "echo", "input": '{"n": 1}', **fields}
    return api.post(f"/v1/tenants/{tenant}/tasks", json=body, headers=WAIT)


def task_events(
    settings: Settings, tenant: str, task_id: str, until: str, count: int = 1, timeout: float = 30
) -> Records:
    found = records_until(settings, TASKS, f"{tenant}/{task_id}", has(until, count), timeout)
    assert names(found).count(until) >= count, names(found)
    return found


def dispatches(settings: Settings, tenant: str, run_id: str) -> Records:
    return records_until(settings, DISPATCH, f"{tenant}/{run_id}", has("DispatchRun"))


def test_an_allowed_task_is_authorized_scheduled_and_dispatched(
    api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant(api)
    deploy(api, tenant)
    accepted = submit(api, tenant, "t-1", labels={"team": "a"}, input='{"text": "hello"}')
    assert accepted.status_code == 201, accepted.text
    events = task_events(settings, tenant, "t-1", "TaskScheduled")
    assert names(events) == ["TaskSubmitted", "TaskAuthorized", "TaskScheduled"]
    [(_, run)] = dispatches(settings, tenant, "t-1.1")
    assert (run["tenant_id"], run["task_id"], run["attempt"]) == (tenant, "t-1", 1)
    assert run["input"] == '{"text": "hello"}'
    assert run["manifest"]["agent_name"] == "echo"
    assert run["manifest"]["quotas"]["timeout_ms"] == 500
    enforcement_id = events[1][1]["enforcement_id"]
    verdicts = records_until(
        settings, events_topic("enforcement"), f"{tenant}/t-1", has("EnforcementDecided")
    )
    [(_, decided)] = verdicts
    assert decided["enforcement_id"] == enforcement_id
    assert (decided["decision"], decided["policy_ids"]) == ("allow", ["platform-default-permit"])


def test_tenant_policies_deny_tasks_and_deployments_with_the_policy_named(
    api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant(api)
    t = f"/v1/tenants/{tenant}"
    small = (
        'forbid(principal, action == Action::"SubmitTask", resource) '
        "when { resource.input_bytes > 20 };"
    )
    put = api.put(f"{t}/policies/small-inputs", json={"cedar": small}, headers=WAIT)
    assert put.status_code in (200, 201), put.text
    invalid = api.put(f"{t}/policies/broken", json={"cedar": "forbid(nope);"}, headers=WAIT)
    assert_problem(invalid, 422, "/cedar")
    deploy(api, tenant)
    big = submit(api, tenant, "big", input='{"text": "' + "x" * 100 + '"}')
    assert_problem(big, 403, None)
    assert "small-inputs" in big.json()["detail"]
    events = task_events(settings, tenant, "big", "TaskRejected")
    assert names(events) == ["TaskSubmitted", "TaskRejected"]
    [(_, decided)] = records_until(
        settings, events_topic("enforcement"), f"{tenant}/big", has("EnforcementDecided")
    )
    assert (decided["decision"], decided["policy_ids"]) == ("deny", ["small-inputs"])
    assert submit(api, tenant, "small").status_code == 201
    # Deployments too: a fuel ceiling stricter than the tenant's limits.
    ceiling = (
        'forbid(principal, action == Action::"DeployAgent", resource) '
        "when { resource.fuel > 1000 };"
    )
    assert api.put(f"{t}/policies/fuel", json={"cedar": ceiling}, headers=WAIT).status_code in (
        200,
        201,
    )
    body = manifest("greedy", quotas={"fuel": 5000, "memory_mb": 64, "timeout_ms": 500})
    denied = api.post(f"{t}/agents", json={"manifest": body}, headers=WAIT)
    assert_problem(denied, 403, None)
    assert "fuel" in denied.json()["detail"]
    allowed = manifest("frugal", quotas={"fuel": 1000, "memory_mb": 64, "timeout_ms": 500})
    assert api.post(f"{t}/agents", json={"manifest": allowed}, headers=WAIT).status_code == 201


def test_a_full_tenant_queues_tasks_and_a_finished_run_admits_the_next(
    api: httpx.Client, settings: Settings, reporter: RunReporter
) -> None:
    tenant = new_tenant(api, max_concurrent_tasks=1)
    deploy(api, tenant)
    assert submit(api, tenant, "first").status_code == 201
    assert submit(api, tenant, "second").status_code == 201
    task_events(settings, tenant, "first", "TaskScheduled")
    waiting = records_until(settings, TASKS, f"{tenant}/second", has("TaskScheduled"), timeout=3)
    assert names(waiting) == ["TaskSubmitted", "TaskAuthorized"]  # no slot yet
    run = Run(tenant, "first", "first.1")
    reporter.started(run, attempt=1)
    reporter.succeeded(run, "sha256:" + "0" * 64, 2, fuel_used=10, duration_ms=3)
    events = task_events(settings, tenant, "first", "TaskSucceeded")
    assert names(events)[-3:] == ["RunStarted", "RunSucceeded", "TaskSucceeded"]
    task_events(settings, tenant, "second", "TaskScheduled")
    assert dispatches(settings, tenant, "second.1")


def test_a_failed_run_is_retried_by_the_timer_after_its_backoff_then_fails(
    api: httpx.Client, settings: Settings, reporter: RunReporter
) -> None:
    tenant = new_tenant(api)
    deploy(api, tenant, max_retries=1, retry_backoff_ms=300)
    assert submit(api, tenant, "flaky").status_code == 201
    task_events(settings, tenant, "flaky", "TaskScheduled")
    reporter.failed(Run(tenant, "flaky", "flaky.1"), "trap", "unreachable executed")
    events = task_events(settings, tenant, "flaky", "TaskScheduled", count=2)
    assert names(events)[-3:] == ["RunFailed", "TaskRetryScheduled", "TaskScheduled"]
    retry = events[-2][1]
    assert retry["next_attempt"] == 2
    assert retry["reason"] == "trap: unreachable executed"
    assert dispatches(settings, tenant, "flaky.2")[0][1]["attempt"] == 2
    reporter.failed(Run(tenant, "flaky", "flaky.2"), "out_of_fuel", "fuel exhausted")
    events = task_events(settings, tenant, "flaky", "TaskFailed")
    assert "after 2 attempts" in events[-1][1]["reason"]


def test_deadlines_and_silent_workers_are_acted_on_by_the_timer(
    api: httpx.Client, settings: Settings, reporter: RunReporter
) -> None:
    tenant = new_tenant(api, max_concurrent_tasks=1)
    deploy(api, tenant)
    assert submit(api, tenant, "busy").status_code == 201
    deadline = int(time.time() * 1000) + 1500
    assert submit(api, tenant, "late", deadline_ms=deadline).status_code == 201
    task_events(settings, tenant, "late", "TaskTimedOut", timeout=20)
    # "busy" started and then its worker went silent: after timeout_ms (500) and the grace
    # (1500 in the tests) the orchestrator gives the run up as worker_lost.
    reporter.started(Run(tenant, "busy", "busy.1"), attempt=1)
    events = task_events(settings, tenant, "busy", "TaskFailed", timeout=20)
    lost = next(value for name, value in events if name.endswith("RunFailed"))
    assert lost["reason"] == "worker_lost"


def test_cancel_frees_the_slot_and_a_finished_task_cannot_be_cancelled(
    api: httpx.Client, settings: Settings, reporter: RunReporter
) -> None:
    tenant = new_tenant(api, max_concurrent_tasks=1)
    deploy(api, tenant)
    t = f"/v1/tenants/{tenant}/tasks"
    assert submit(api, tenant, "a").status_code == 201
    assert submit(api, tenant, "b").status_code == 201
    cancelled = api.post(f"{t}/a/cancel", json={"reason": "changed my mind"}, headers=WAIT)
    assert cancelled.status_code == 200, cancelled.text
    task_events(settings, tenant, "b", "TaskScheduled")
    run = Run(tenant, "b", "b.1")
    reporter.started(run, attempt=1)
    reporter.succeeded(run, "sha256:" + "1" * 64, 2, fuel_used=1, duration_ms=1)
    task_events(settings, tenant, "b", "TaskSucceeded")
    assert_problem(api.post(f"{t}/b/cancel", json={}, headers=WAIT), 409, None)
    assert_problem(api.post(f"{t}/a/cancel", json={}, headers=WAIT), 409, None)


def test_the_orchestrator_survives_a_worker_killed_mid_task_and_a_poison_message(
    processes: AionProcesses, api: httpx.Client, settings: Settings, reporter: RunReporter
) -> None:
    tenant = new_tenant(api, max_concurrent_tasks=1)
    deploy(api, tenant)
    assert submit(api, tenant, "one").status_code == 201
    assert submit(api, tenant, "two").status_code == 201
    task_events(settings, tenant, "one", "TaskScheduled")
    worker = processes.procs["worker"]
    worker.kill()  # no clean shutdown: the scheduler's state must come back from Kafka
    worker.wait()
    producer = Producer(producer_config(settings.kafka))
    producer.produce(COMMANDS, key=tenant.encode(), value=b"\x00 poison in the middle")
    producer.flush(10)
    run = Run(tenant, "one", "one.1")
    reporter.started(run, attempt=1)
    reporter.succeeded(run, "sha256:" + "2" * 64, 2, fuel_used=1, duration_ms=1)
    processes.start_role("worker")
    processes.wait_ready()
    task_events(settings, tenant, "one", "TaskSucceeded", timeout=60)
    # The queue survived the crash: "two" is admitted once "one" has finished, exactly once.
    events = task_events(settings, tenant, "two", "TaskScheduled", timeout=60)
    assert names(events).count("TaskScheduled") == 1
    assert len(dispatches(settings, tenant, "two.1")) >= 1


def test_a_task_input_that_breaks_the_agents_input_schema_is_a_422_naming_the_path(
    api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant(api)
    schema = '{"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}'
    body = manifest("typed", input_schema=schema)
    t = f"/v1/tenants/{tenant}"
    assert api.post(f"{t}/agents", json={"manifest": body}, headers=WAIT).status_code == 201
    bad_schema = manifest("broken", input_schema='{"type": 7}')
    assert_problem(
        api.post(f"{t}/agents", json={"manifest": bad_schema}, headers=WAIT),
        422,
        "/manifest/input_schema",
    )
    wrong = api.post(
        f"{t}/tasks", json={"agent_name": "typed", "input": '{"text": 3}'}, headers=WAIT
    )
    problem = assert_problem(wrong, 422, "/input")
    assert "at /text" in problem["detail"]
    right = api.post(
        f"{t}/tasks", json={"agent_name": "typed", "input": '{"text": "hi"}'}, headers=WAIT
    )
    assert right.status_code == 201, right.text


def test_a_hostile_input_pattern_neither_stalls_the_partition_nor_deploys_if_it_backtracks(
    api: httpx.Client,
) -> None:
    """Issue 17, finding 1, the attack as the review ran it: an agent whose input_schema has
    ``^(a+)+$`` and a task input of 'a's then '!'. With Python's ``re`` 40 of them take ~2**40
    steps: the worker never answered within the wait, and every command of the tenant's
    partition queued behind it. On RE2 it is refused at once, and the next command of the same
    tenant is decided."""
    tenant = new_tenant(api)
    t = f"/v1/tenants/{tenant}"
    evil = '{"properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}'
    deployed = api.post(f"{t}/agents", json={"manifest": manifest("evil", input_schema=evil)},
                        headers=WAIT)  # fmt: skip
    assert deployed.status_code == 201, deployed.text
    attack = {"agent_name": "evil", "input": '{"s": "' + "a" * 40 + '!"}'}
    problem = assert_problem(api.post(f"{t}/tasks", json=attack, headers=WAIT), 422, "/input")
    assert "at /s" in problem["detail"]
    after = {"agent_name": "evil", "input": '{"s": "aaa"}'}
    assert api.post(f"{t}/tasks", json=after, headers=WAIT).status_code == 201
    backtracking = manifest(
        "backref", input_schema='{"properties": {"s": {"pattern": "(a)\\\\1"}}}'
    )
    refused = api.post(f"{t}/agents", json={"manifest": backtracking}, headers=WAIT)
    assert "RE2" in assert_problem(refused, 422, "/manifest/input_schema")["detail"]
