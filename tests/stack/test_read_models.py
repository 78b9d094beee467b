"""The domain read models end to end: commands over HTTP in, rows in Postgres out.

The real system runs (API, command processor, projector, kernel worker); the rows are read with
psycopg from the read model's database. Rows of the aggregate a command addressed are visible
as soon as a `Prefer: wait` returns (one transaction with the outcome); rows that other events
write (runs, verdicts on their own topic) are polled for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
import wasmtime
from psycopg.rows import dict_row

from aion.settings import Settings
from tests.stack.test_domain_api import DIGEST, manifest
from tests.stack.test_kernel_runs import HOSTILE, agent, example, last, run_task
from tests.stack.test_orchestration import WAIT, deploy, new_tenant
from tests.stack.test_tenants_api import assert_problem

Rows = list[dict[str, Any]]
BIG_INPUTS = (
    'forbid(principal, action == Action::"SubmitTask", resource) '
    "when { resource.input_bytes > 20 };"
)
FUEL_CEILING = (
    'forbid(principal, action == Action::"DeployAgent", resource) when { resource.fuel > 1000 };'
)


@pytest.fixture()
def db(settings: Settings) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """Autocommit: every query sees what the projector committed by then."""
    with psycopg.connect(settings.database, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def rows(db: psycopg.Connection[dict[str, Any]], sql: str, *params: Any) -> Rows:
    return db.execute(sql, params).fetchall()


def rows_when(
    db: psycopg.Connection[dict[str, Any]],
    done: Callable[[Rows], bool],
    sql: str,
    *params: Any,
    timeout: float = 30,
) -> Rows:
    """The query's rows once ``done`` says so (the projector is asynchronous), or at the
    timeout (then what was found, for the assertion to show)."""
    deadline = time.monotonic() + timeout
    while True:
        found = rows(db, sql, *params)
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def task_row(db: psycopg.Connection[dict[str, Any]], tenant: str, task_id: str) -> Rows:
    return rows(db, "select * from tasks where tenant_id = %s and task_id = %s", tenant, task_id)


def test_a_task_that_runs_to_success_has_its_task_run_artifact_and_verdict(
    api: httpx.Client, settings: Settings, db: psycopg.Connection[dict[str, Any]]
) -> None:
    tenant = new_tenant(api)
    assert agent(api, tenant, "echo", example("echo")).status_code == 201
    events = run_task(api, settings, tenant, "echo", {"text": "hi"}, "TaskSucceeded")
    task_id = last(events, "TaskSubmitted")["task_id"]
    succeeded = last(events, "RunSucceeded")

    [task] = rows_when(
        db,
        lambda found: bool(found) and found[0]["status"] == "succeeded",
        "select * from tasks where tenant_id = %s and task_id = %s",
        tenant,
        task_id,
    )
    assert (task["agent_name"], task["agent_version"], task["attempt"]) == ("echo", "1.0.0", 1)
    assert task["run_id"] == f"{task_id}.1"
    assert task["input"] == '{"text": "hi"}' and task["input_bytes"] == len(task["input"])
    assert task["output_digest"] == succeeded["output_digest"]
    assert task["version"] == last(events, "TaskSucceeded")["envelope"]["aggregate_version"]
    assert task["submitted_at"] <= task["updated_at"] == task["finished_at"]

    [run] = rows(db, "select * from runs where tenant_id = %s and task_id = %s", tenant, task_id)
    assert (run["run_id"], run["attempt"], run["status"]) == (f"{task_id}.1", 1, "succeeded")
    assert run["worker"] and run["failure_reason"] is None
    assert run["fuel_used"] == succeeded["fuel_used"] > 0
    assert (run["output_digest"], run["output_bytes"]) == (
        succeeded["output_digest"],
        succeeded["output_bytes"],
    )
    assert run["scheduled_at"] <= run["started_at"] <= run["finished_at"]

    artifacts = {
        a["artifact_id"]: a
        for a in rows(
            db, "select * from artifacts where tenant_id = %s and task_id = %s", tenant, task_id
        )
    }
    output = artifacts["output"]
    assert (output["run_id"], output["digest"]) == (f"{task_id}.1", succeeded["output_digest"])
    assert output["content_type"] == "application/json"
    assert output["size_bytes"] == succeeded["output_bytes"]
    assert output["object_key"].endswith(succeeded["output_digest"].removeprefix("sha256:"))

    [verdict] = rows_when(
        db,
        bool,
        "select * from enforcements where tenant_id = %s and enforcement_id = %s",
        tenant,
        task["enforcement_id"],
    )
    assert (verdict["subject_type"], verdict["subject_id"], verdict["action"]) == (
        "task",
        task_id,
        "SubmitTask",
    )
    assert (verdict["decision"], verdict["policy_ids"]) == ("allow", ["platform-default-permit"])
    assert verdict["request"]["resource"] == {"type": "Task", "id": f"{tenant}/{task_id}"}


def test_a_failed_run_is_retried_and_every_attempt_has_its_run(
    api: httpx.Client, settings: Settings, db: psycopg.Connection[dict[str, Any]]
) -> None:
    tenant = new_tenant(api)
    crash = bytes(wasmtime.wat2wasm(HOSTILE["crash"]))
    quotas = {"max_retries": 1, "retry_backoff_ms": 0}
    assert agent(api, tenant, "crash", crash, quotas=quotas).status_code == 201
    events = run_task(api, settings, tenant, "crash", {}, "TaskFailed")
    task_id = last(events, "TaskSubmitted")["task_id"]

    [task] = rows_when(
        db,
        lambda found: bool(found) and found[0]["status"] == "failed",
        "select * from tasks where tenant_id = %s and task_id = %s",
        tenant,
        task_id,
    )
    assert (task["attempt"], task["run_id"], task["output_digest"]) == (2, f"{task_id}.2", None)
    assert "trap" in task["reason"] and "after 2 attempts" in task["reason"]
    assert task["finished_at"] is not None
    runs = rows(
        db,
        "select * from runs where tenant_id = %s and task_id = %s order by attempt",
        tenant,
        task_id,
    )
    assert [(r["attempt"], r["status"], r["failure_reason"]) for r in runs] == [
        (1, "failed", "trap"),
        (2, "failed", "trap"),
    ]
    assert all(r["failure_message"] and r["finished_at"] for r in runs)


def test_a_denied_task_is_rejected_and_the_deny_verdict_is_recorded(
    api: httpx.Client, db: psycopg.Connection[dict[str, Any]]
) -> None:
    tenant = new_tenant(api)
    t = f"/v1/tenants/{tenant}"
    put = api.put(f"{t}/policies/small-inputs", json={"cedar": BIG_INPUTS}, headers=WAIT)
    assert put.status_code == 200, put.text
    deploy(api, tenant)
    big = api.post(
        f"{t}/tasks",
        json={"task_id": "big", "agent_name": "echo", "input": json.dumps({"t": "x" * 50})},
        headers=WAIT,
    )
    assert_problem(big, 403, None)

    [task] = task_row(db, tenant, "big")  # visible once the waited outcome is
    assert task["status"] == "rejected" and "small-inputs" in task["reason"]
    assert (task["attempt"], task["run_id"], task["enforcement_id"]) == (0, None, None)
    assert task["finished_at"] is not None
    assert rows(db, "select * from runs where tenant_id = %s", tenant) == []
    [verdict] = rows_when(
        db,
        bool,
        "select * from enforcements where tenant_id = %s and subject_type = 'task'"
        " and subject_id = 'big'",
        tenant,
    )
    assert (verdict["decision"], verdict["policy_ids"]) == ("deny", ["small-inputs"])

    # A denied deployment leaves no agent, only its verdict.
    fuel = api.put(f"{t}/policies/fuel", json={"cedar": FUEL_CEILING}, headers=WAIT)
    assert fuel.status_code == 200, fuel.text
    greedy = manifest("greedy", quotas={"fuel": 5000, "memory_mb": 64, "timeout_ms": 500})
    assert_problem(api.post(f"{t}/agents", json={"manifest": greedy}, headers=WAIT), 403, None)
    agents = rows(db, "select agent_name from agents where tenant_id = %s", tenant)
    assert agents == [{"agent_name": "echo"}]
    [denied] = rows_when(
        db,
        bool,
        "select * from enforcements where tenant_id = %s and subject_id = 'greedy'",
        tenant,
    )
    assert (denied["subject_type"], denied["action"]) == ("agent", "DeployAgent")
    assert (denied["decision"], denied["policy_ids"]) == ("deny", ["fuel"])


def test_models_agents_and_their_versions_follow_register_deploy_update_and_retire(
    api: httpx.Client, db: psycopg.Connection[dict[str, Any]]
) -> None:
    tenant = new_tenant(api)
    t = f"/v1/tenants/{tenant}"
    model = {"model_name": "mini", "provider": "local", "kind": "embedding"}
    registered = api.post(f"{t}/models", json={**model, "parameters": {"dim": "384"}}, headers=WAIT)
    assert registered.status_code == 201, registered.text
    [row] = rows(db, "select * from models where tenant_id = %s", tenant)
    assert {k: row[k] for k in (*model, "parameters", "status", "version")} == {
        **model,
        "parameters": {"dim": "384"},
        "status": "registered",
        "version": 1,
    }

    first = manifest("helper", models=["mini"], labels={"team": "ml"}, description="first")
    assert api.post(f"{t}/agents", json={"manifest": first}, headers=WAIT).status_code == 201
    [deployed] = rows(db, "select * from agents where tenant_id = %s", tenant)
    assert (deployed["status"], deployed["agent_version"], deployed["version"]) == (
        "deployed",
        "1.0.0",
        1,
    )
    assert (deployed["labels"], deployed["description"]) == ({"team": "ml"}, "first")
    assert deployed["manifest"]["quotas"]["max_concurrency"] == 1  # normalised by the decider

    second = manifest("helper", "1.1.0", models=["mini"], description="second")
    assert api.put(f"{t}/agents/helper", json={"manifest": second}, headers=WAIT).status_code == 200
    [updated] = rows(db, "select * from agents where tenant_id = %s", tenant)
    assert (updated["agent_version"], updated["version"], updated["labels"]) == ("1.1.0", 2, {})
    assert updated["created_at"] == deployed["created_at"] <= updated["updated_at"]
    versions = rows(
        db,
        "select * from agent_versions where tenant_id = %s and agent_name = 'helper'"
        " order by deployed_at, agent_version",
        tenant,
    )
    assert [(v["agent_version"], v["module_digest"]) for v in versions] == [
        ("1.0.0", DIGEST),
        ("1.1.0", DIGEST),
    ]
    assert versions[1]["manifest"]["description"] == "second"

    retired = api.post(f"{t}/agents/helper/retire", json={"reason": "replaced"}, headers=WAIT)
    assert retired.status_code == 200, retired.text
    [row] = rows(db, "select * from agents where tenant_id = %s", tenant)
    assert (row["status"], row["retired_reason"], row["version"]) == ("retired", "replaced", 3)
    assert row["agent_version"] == "1.1.0"
    assert len(rows(db, "select * from agent_versions where tenant_id = %s", tenant)) == 2


def test_a_deleted_policy_keeps_its_row_until_put_again(
    api: httpx.Client, db: psycopg.Connection[dict[str, Any]]
) -> None:
    tenant = new_tenant(api)
    path = f"/v1/tenants/{tenant}/policies/allow-all"
    cedar = "permit(principal, action, resource);"
    assert (
        api.put(path, json={"cedar": cedar, "description": "d1"}, headers=WAIT).status_code == 200
    )
    [put] = rows(db, "select * from policies where tenant_id = %s", tenant)
    assert (put["status"], put["policy_version"], put["version"]) == ("active", 1, 1)
    assert (put["cedar"], put["description"]) == (cedar, "d1")

    assert api.delete(path, headers=WAIT).status_code == 200
    [deleted] = rows(db, "select * from policies where tenant_id = %s", tenant)
    assert (deleted["status"], deleted["version"], deleted["cedar"]) == ("deleted", 2, cedar)

    assert (
        api.put(path, json={"cedar": cedar, "description": "d3"}, headers=WAIT).status_code == 200
    )
    [again] = rows(db, "select * from policies where tenant_id = %s", tenant)
    assert (again["status"], again["policy_version"], again["version"]) == ("active", 3, 3)
    assert again["description"] == "d3" and again["created_at"] == put["created_at"]


def test_a_cancelled_queued_task_never_ran(
    api: httpx.Client, db: psycopg.Connection[dict[str, Any]]
) -> None:
    tenant = new_tenant(api, tasks_per_minute=1)  # the second task waits in the queue
    deploy(api, tenant)
    t = f"/v1/tenants/{tenant}/tasks"
    for task_id in ("first", "queued"):
        body = {"task_id": task_id, "agent_name": "echo", "input": "{}", "labels": {"k": "v"}}
        assert api.post(t, json=body, headers=WAIT).status_code == 201
    cancelled = api.post(f"{t}/queued/cancel", json={"reason": "not needed"}, headers=WAIT)
    assert cancelled.status_code == 200, cancelled.text
    [task] = task_row(db, tenant, "queued")
    assert (task["status"], task["reason"], task["attempt"]) == ("cancelled", "not needed", 0)
    assert task["labels"] == {"k": "v"} and task["enforcement_id"]
    assert task["finished_at"] == task["updated_at"]
    runs = rows(db, "select * from runs where tenant_id = %s and task_id = 'queued'", tenant)
    assert runs == []
