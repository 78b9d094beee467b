"""The query API over the read models: lists, cursors, ETags, artifacts, read-your-writes,
and tenant isolation on every query."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from aion.settings import Settings
from tests.stack.identity import admin_client
from tests.stack.test_kernel_runs import agent, example
from tests.stack.test_orchestration import WAIT, new_tenant, task_events
from tests.stack.test_tenants_api import assert_problem


def submit(
    api: httpx.Client, tenant: str, task_id: str, body: Any, agent_name: str = "echo"
) -> str:
    payload = {"task_id": task_id, "agent_name": agent_name, "input": json.dumps(body)}
    submitted = api.post(f"/v1/tenants/{tenant}/tasks", json=payload, headers=WAIT)
    assert submitted.status_code == 201, submitted.text
    return str(submitted.json()["command_id"])


@pytest.fixture(scope="module")
def tenant(system: str) -> str:
    with admin_client(system, timeout=60) as client:
        tenant_id = new_tenant(client)
        assert agent(client, tenant_id, "echo", example("echo")).status_code == 201
        return tenant_id


def test_a_task_its_runs_and_its_output_can_be_read_back(
    api: httpx.Client, settings: Settings, tenant: str
) -> None:
    submit(api, tenant, "q-1", {"text": "read me"})
    task_events(settings, tenant, "q-1", "TaskSucceeded", timeout=60)
    t = f"/v1/tenants/{tenant}"
    task = api.get(f"{t}/tasks/q-1")
    for _ in range(100):  # the projector follows the events topic: wait for the last one
        if task.json().get("status") == "succeeded":
            break
        task = api.get(f"{t}/tasks/q-1")
    assert task.status_code == 200, task.text
    body = task.json()
    assert (body["status"], body["agent_name"], body["attempt"]) == ("succeeded", "echo", 1)
    assert (
        api.get(f"{t}/tasks/q-1", headers={"If-None-Match": task.headers["etag"]}).status_code
        == 304
    )
    [run] = api.get(f"{t}/tasks/q-1/runs").json()["items"]
    assert (run["run_id"], run["status"]) == ("q-1.1", "succeeded")
    assert run["fuel_used"] > 0
    artifacts = api.get(f"{t}/tasks/q-1/artifacts").json()["items"]
    output = next(a for a in artifacts if a["artifact_id"] == "output")
    assert output["digest"] == run["output_digest"]
    content = api.get(f"{t}/tasks/q-1/runs/q-1.1/artifacts/output")
    assert content.status_code == 200, content.text
    assert content.json() == {"text": "read me"}
    assert content.headers["etag"] == f'"{output["digest"]}"'
    assert content.headers["content-type"].startswith("application/json")
    assert_problem(api.get(f"{t}/tasks/q-1/runs/q-1.1/artifacts/nope"), 404, "artifact")


def test_lists_page_with_cursors_and_filter(api: httpx.Client, tenant: str) -> None:
    t = f"/v1/tenants/{tenant}"
    last = ""
    for i in range(5):
        last = submit(api, tenant, f"page-{i}", {"i": i})
    listed = api.get(f"{t}/tasks", params={"limit": 2, "after_command": last})
    assert listed.headers["aion-consistency"] == "after-command"
    seen: list[str] = []
    page = listed.json()
    while True:
        seen += [item["task_id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        page = api.get(f"{t}/tasks", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    pages = [s for s in seen if s.startswith("page-")]
    assert pages == [f"page-{i}" for i in reversed(range(5))]  # newest first, each once
    assert len(seen) == len(set(seen))
    by_agent = api.get(f"{t}/tasks", params={"agent_name": "nobody"}).json()
    assert by_agent == {"items": [], "next_cursor": None}
    agents = api.get(f"{t}/agents", params={"status": "deployed"}).json()["items"]
    assert [a["agent_name"] for a in agents] == ["echo"]
    assert agents[0]["manifest"]["abi"] == "reactor"
    versions = api.get(f"{t}/agents/echo/versions").json()["items"]
    assert [v["agent_version"] for v in versions] == ["1.0.0"]
    event = api.get(f"/v1/commands/{last}").json()["event_position"]
    position = f"{event['topic']}:{event['partition']}:{event['offset']}"
    at = api.get(f"{t}/tasks/page-4", params={"after": position})
    assert at.headers["aion-consistency"] == "after-position" and at.status_code == 200
    assert_problem(api.get(f"{t}/tasks", params={"after": "nonsense"}), 422, "after")
    assert_problem(api.get(f"{t}/tasks", params={"limit": 0}), 422, "limit")
    assert_problem(api.get(f"{t}/tasks", params={"cursor": "garbage!"}), 400, "cursor")


FORGED = ['["x","y"]', "[1,2]", '[{"a":1},2]', '["2026-01-01T00:00:00Z","\\u0000"]',
          "[1e400,1]", '["2026-13-45",""]', "[[],[]]"]  # fmt: skip


@pytest.mark.parametrize("forged", FORGED)
def test_a_forged_cursor_is_a_400_not_a_500(api: httpx.Client, tenant: str, forged: str) -> None:
    """Issue 17, finding 14: well-formed cursors whose values the database cannot read as the
    sort key's types (text for a time, a NUL, a number out of range) answered 500."""
    cursor = base64.urlsafe_b64encode(forged.encode()).decode().rstrip("=")
    for path in (f"/v1/tenants/{tenant}/tasks", f"/v1/tenants/{tenant}/users"):
        problem = assert_problem(api.get(path, params={"cursor": cursor}), 400, "cursor")
        assert problem["type"].endswith("invalid-cursor")
    tenants = api.get("/v1/tenants", params={"cursor": cursor})  # the platform's list: one part
    assert_problem(tenants, 400, "cursor")


def test_users_page_with_cursors(api: httpx.Client) -> None:
    tenant = new_tenant(api)
    t = f"/v1/tenants/{tenant}"
    for user in ("cy", "ab", "bo"):
        added = api.post(
            f"{t}/users",
            json={"user_id": user, "display_name": user, "roles": ["viewer"]},
            headers=WAIT,
        )
        assert added.status_code == 201, added.text
    first = api.get(f"{t}/users", params={"limit": 2}).json()
    assert [u["user_id"] for u in first["items"]] == ["ab", "bo"]
    rest = api.get(f"{t}/users", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert ([u["user_id"] for u in rest["items"]], rest["next_cursor"]) == (["cy"], None)
    assert_problem(api.get(f"{t}/users", params={"limit": 0}), 422, "limit")


def test_enforcements_and_policies_are_queryable(api: httpx.Client, tenant: str) -> None:
    t = f"/v1/tenants/{tenant}"
    forbid = (
        'forbid(principal, action == Action::"SubmitTask", resource) '
        'when { resource.labels.contains("env=prod") };'
    )
    put = api.put(f"{t}/policies/no-prod", json={"cedar": forbid}, headers=WAIT)
    assert put.status_code in (200, 201), put.text
    payload = {"task_id": "denied", "agent_name": "echo", "input": "{}", "labels": {"env": "prod"}}
    denied = api.post(f"{t}/tasks", json=payload, headers=WAIT)
    assert_problem(denied, 403, None)
    command_id = denied.json().get("command_id") or ""
    decisions = api.get(
        f"{t}/enforcements", params={"decision": "deny", "after_command": command_id}
    ).json()["items"]
    assert [(d["subject_id"], d["policy_ids"]) for d in decisions] == [("denied", ["no-prod"])]
    policy = api.get(f"{t}/policies/no-prod")
    assert policy.status_code == 200 and policy.json()["cedar"] == forbid
    assert api.get(f"{t}/tasks/denied").json()["status"] == "rejected"


def test_another_tenants_entities_are_invisible_on_every_query(
    api: httpx.Client, tenant: str
) -> None:
    other = new_tenant(api)
    o, t = f"/v1/tenants/{other}", f"/v1/tenants/{tenant}"
    assert api.get(f"{o}/tasks").json()["items"] == []
    assert api.get(f"{o}/agents").json()["items"] == []
    assert_problem(api.get(f"{o}/agents/echo"), 404, "agent")
    assert_problem(api.get(f"{o}/tasks/q-1"), 404, "task")
    assert api.get(f"{o}/tasks/q-1/runs").json()["items"] == []
    assert_problem(api.get(f"{o}/tasks/q-1/runs/q-1.1/artifacts/output"), 404, "artifact")
    assert api.get(f"{o}/enforcements").json()["items"] == []
    # A cursor from one tenant's list cannot reach into another's: the path scopes the query.
    page = api.get(f"{t}/tasks", params={"limit": 1}).json()
    assert api.get(f"{o}/tasks", params={"cursor": page["next_cursor"]}).json()["items"] == []
    assert_problem(api.get("/v1/tenants/ghost-tenant/tasks"), 404, "tenant")
