"""`POST /v1/tenants/{t}/tasks/batch`: valid items become commands, invalid ones are answered
by index, and the accepted tasks are really submitted."""

from __future__ import annotations

import time

import httpx

from tests.stack.identity import bearer
from tests.stack.test_tenants_api import assert_problem, new_tenant_id


def test_a_batch_submits_the_valid_items_and_names_the_invalid_ones(api: httpx.Client) -> None:
    tenant = new_tenant_id()
    created = api.post(
        "/v1/tenants",
        json={"tenant_id": tenant, "display_name": "B"},
        headers={"Prefer": "wait=20"},
    )
    assert created.status_code == 201, created.text
    items = [
        {"task_id": "a", "agent_name": "nobody", "input": '{"n": 1}'},
        {"task_id": "b", "agent_name": 5},  # agent_name must be a string
        {"agent_name": "nobody", "input": "{}"},  # the task id is generated
    ]
    response = api.post(f"/v1/tenants/{tenant}/tasks/batch", json={"tasks": items})
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["refused"]) == (2, 1)
    first, second, third = body["items"]
    assert first["status"] == 202 and first["task_id"] == "a"
    assert second["status"] == 422 and second["problem"]["field"] == "/tasks/1/agent_name"
    assert third["status"] == 202 and third["task_id"]
    # Each accepted item is a real command: its decider answers (the agent does not exist).
    deadline = time.monotonic() + 30
    while True:
        outcome = api.get(first["status_url"]).json()
        if outcome["status"] != "pending" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert outcome["status"] == "rejected" and outcome["command_type"] == "aion.task.SubmitTask"


def test_bad_batches_are_problems(api: httpx.Client, system: str) -> None:
    tenant = new_tenant_id()
    api.post(
        "/v1/tenants",
        json={"tenant_id": tenant, "display_name": "B"},
        headers={"Prefer": "wait=20"},
    )
    path = f"/v1/tenants/{tenant}/tasks/batch"
    assert_problem(api.post(path, json={"tasks": []}), 422, "/tasks")
    assert_problem(api.post(path, json={"tasks": [{}] * 1001}), 422, "/tasks")
    everything_wrong = api.post(path, json={"tasks": [{"agent_name": 1}]})
    assert assert_problem(everything_wrong, 422, "/tasks")["errors"][0]["field"].startswith(
        "/tasks/0"
    )
    keyed = api.post(path, json={"tasks": [{"agent_name": "x"}]}, headers={"Idempotency-Key": "k"})
    assert_problem(keyed, 400, "Idempotency-Key")
    viewer = httpx.post(
        f"{system}{path}",
        json={"tasks": [{"agent_name": "x"}]},
        headers=bearer("v", tenant, "viewer"),
        timeout=30,
    )
    assert_problem(viewer, 403, None)
