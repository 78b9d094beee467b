"""`POST /v1/tenants/{t}/tasks/batch`: valid items become commands, invalid ones are answered
by index, and the accepted tasks are really submitted."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import AionProcesses
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


@pytest.fixture()
def api_losing_some_items(processes: AionProcesses) -> Iterator[None]:
    """The API, with the items whose task id starts with ``unsent-`` failing to be sent."""
    processes.stop_role("serve")
    processes.start_role("serve", AION_FAILPOINTS="unsent-batch-items")
    try:
        processes.wait_ready()
        yield
    finally:
        processes.stop_role("serve")
        processes.start_role("serve")
        processes.wait_ready()


def test_items_kafka_did_not_take_are_named_beside_the_ids_of_those_it_took(
    api_losing_some_items: None, api: httpx.Client
) -> None:
    """A retry must be able to send only what was lost, with the same task ids: the items that
    were sent keep their server-made ids in the answer (finding 14: it was a bare 500)."""
    tenant = new_tenant_id()
    created = api.post(
        "/v1/tenants",
        json={"tenant_id": tenant, "display_name": "B"},
        headers={"Prefer": "wait=20"},
    )
    assert created.status_code == 201, created.text
    items = [
        {"agent_name": "nobody", "input": "{}"},
        {"task_id": "unsent-1", "agent_name": "nobody", "input": "{}"},
        {"agent_name": "nobody", "input": "{}"},
    ]
    response = api.post(f"/v1/tenants/{tenant}/tasks/batch", json={"tasks": items})
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["refused"]) == (2, 1)
    first, lost, third = body["items"]
    assert first["status"] == third["status"] == 202
    assert first["task_id"] and third["task_id"] and first["command_id"]
    assert lost["status"] == 503 and lost["task_id"] == "unsent-1"
    assert lost["problem"]["type"].endswith("/unavailable")
    assert "same task_id" in lost["problem"]["detail"]
    # The sent items are real commands; the lost one never reached Kafka.
    for sent in (first, third):
        assert api.get(sent["status_url"]).status_code == 200
    # Nothing sent at all: the whole answer says to retry.
    only_lost = api.post(f"/v1/tenants/{tenant}/tasks/batch", json={"tasks": [items[1]]})
    assert only_lost.status_code == 503, only_lost.text
    assert only_lost.headers["retry-after"] == "1"
    assert only_lost.json()["items"][0]["task_id"] == "unsent-1"
