"""Every command endpoint end to end: the deciders' rules as a caller sees them over HTTP."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import wasmtime

from aion.settings import Settings
from tests.stack.identity import admin_client
from tests.stack.test_tenants_api import assert_problem, commands_high_watermark, new_tenant_id

WAIT = {"Prefer": "wait=20"}
WASM = {"content-type": "application/wasm"}
ECHO = bytes(wasmtime.wat2wasm('(module (func (export "run")))'))
DIGEST = "sha256:" + hashlib.sha256(ECHO).hexdigest()


def manifest(name: str, version: str = "1.0.0", **overrides: Any) -> dict[str, Any]:
    body = {
        "agent_name": name,
        "version": version,
        "module_digest": DIGEST,
        "abi": "reactor",
        "models": [],
        "quotas": {"fuel": 1_000_000, "memory_mb": 64, "timeout_ms": 5000},
    }
    return {**body, **overrides}


@pytest.fixture()
def tenant(api: httpx.Client) -> str:
    tenant_id = new_tenant_id()
    # One task a minute: the test's second task stays queued, so it can be cancelled for sure.
    body = {"tenant_id": tenant_id, "display_name": "D", "limits": {"tasks_per_minute": 1}}
    created = api.post("/v1/tenants", json=body, headers=WAIT)
    assert created.status_code == 201, created.text
    uploaded = api.post(f"/v1/tenants/{tenant_id}/modules", content=ECHO, headers=WASM)
    assert uploaded.status_code in (200, 201), uploaded.text
    return tenant_id


def test_users_roles_and_the_last_admin(api: httpx.Client, tenant: str) -> None:
    t = f"/v1/tenants/{tenant}"
    added = api.post(
        f"{t}/users",
        json={"user_id": "ana", "display_name": "Ana", "roles": ["admin"]},
        headers=WAIT,
    )
    assert added.status_code == 201, added.text
    assert added.headers["location"] == f"{t}/users/ana"
    assert (
        api.post(
            f"{t}/users",
            json={"user_id": "bo", "display_name": "Bo", "roles": ["viewer"]},
            headers=WAIT,
        ).status_code
        == 201
    )
    roles = api.put(f"{t}/users/bo/roles", json={"roles": ["operator", "developer"]}, headers=WAIT)
    assert roles.status_code == 200, roles.text
    users = api.get(f"{t}/users").json()["items"]
    assert [(u["user_id"], u["roles"]) for u in users] == [
        ("ana", ["admin"]),
        ("bo", ["operator", "developer"]),
    ]
    last_admin = api.delete(f"{t}/users/ana", headers=WAIT)
    assert_problem(last_admin, 409, "/user_id")
    assert_problem(
        api.put(f"{t}/users/ghost/roles", json={"roles": ["viewer"]}, headers=WAIT), 404, "/user_id"
    )
    assert_problem(
        api.post(f"{t}/users", json={"user_id": "x", "display_name": "X", "roles": ["root"]}),
        422,
        "/roles/0",
    )
    assert api.delete(f"{t}/users/bo", headers=WAIT).status_code == 200
    assert [u["user_id"] for u in api.get(f"{t}/users").json()["items"]] == ["ana"]


def test_agent_lifecycle_and_tasks(api: httpx.Client, tenant: str) -> None:
    t = f"/v1/tenants/{tenant}"
    model = api.post(
        f"{t}/models",
        json={"model_name": "mini", "provider": "local", "kind": "embedding"},
        headers=WAIT,
    )
    assert model.status_code == 201, model.text
    missing_model = api.post(
        f"{t}/agents", json={"manifest": manifest("a1", models=["nope"])}, headers=WAIT
    )
    assert_problem(missing_model, 404, "/manifest/models/0")
    over_quota = manifest("a1", quotas={"fuel": 1, "memory_mb": 100_000, "timeout_ms": 10})
    assert_problem(
        api.post(f"{t}/agents", json={"manifest": over_quota}, headers=WAIT),
        422,
        "/manifest/quotas/memory_mb",
    )
    never_uploaded = manifest("a1", models=["mini"], module_digest="sha256:" + "ab" * 32)
    assert_problem(
        api.post(f"{t}/agents", json={"manifest": never_uploaded}, headers=WAIT),
        404,
        "/manifest/module_digest",
    )
    deployed = api.post(
        f"{t}/agents", json={"manifest": manifest("a1", models=["mini"])}, headers=WAIT
    )
    assert deployed.status_code == 201, deployed.text
    assert deployed.json()["aggregate_id"] == f"{tenant}/a1"
    assert deployed.headers["location"] == f"{t}/agents/a1"

    older = api.put(f"{t}/agents/a1", json={"manifest": manifest("a1", "0.9.0")}, headers=WAIT)
    assert_problem(older, 409, "/manifest/version")
    assert (
        api.put(
            f"{t}/agents/a1", json={"manifest": manifest("a1", "1.1.0")}, headers=WAIT
        ).status_code
        == 200
    )

    first = api.post(f"{t}/tasks", json={"agent_name": "a1", "input": "{}"}, headers=WAIT)
    assert first.status_code == 201, first.text  # takes the minute's only start
    task = api.post(
        f"{t}/tasks", json={"agent_name": "a1", "input": '{"text": "hi"}'}, headers=WAIT
    )
    assert task.status_code == 201, task.text
    task_id = task.json()["aggregate_id"].split("/", 1)[1]
    assert task.headers["location"] == f"{t}/tasks/{task_id}"
    assert_problem(
        api.post(f"{t}/tasks", json={"agent_name": "a1", "input": "{not json"}, headers=WAIT),
        422,
        "/input",
    )
    assert api.post(f"{t}/tasks/{task_id}/cancel", json={}, headers=WAIT).status_code == 200
    assert_problem(api.post(f"{t}/tasks/{task_id}/cancel", json={}, headers=WAIT), 409, None)

    assert (
        api.post(f"{t}/agents/a1/retire", json={"reason": "old"}, headers=WAIT).status_code == 200
    )
    refused = api.post(f"{t}/tasks", json={"agent_name": "a1", "input": "{}"}, headers=WAIT)
    assert_problem(refused, 409, "/agent_name")
    unknown = api.post(f"{t}/tasks", json={"agent_name": "ghost", "input": "{}"}, headers=WAIT)
    assert_problem(unknown, 404, "/agent_name")


def test_policies_put_and_delete(api: httpx.Client, tenant: str) -> None:
    t = f"/v1/tenants/{tenant}"
    cedar = "permit(principal, action, resource);"
    first = api.put(f"{t}/policies/allow-all", json={"cedar": cedar}, headers=WAIT)
    assert first.status_code == 200, first.text
    assert first.json()["aggregate_version"] == 1
    mismatch = api.put(f"{t}/policies/allow-all", json={"policy_id": "other", "cedar": cedar})
    assert_problem(mismatch, 422, "/policy_id")
    assert api.delete(f"{t}/policies/allow-all", headers=WAIT).status_code == 200
    assert_problem(api.delete(f"{t}/policies/allow-all", headers=WAIT), 404, "/policy_id")
    invalid = api.put(
        f"{t}/policies/broken",
        json={
            "cedar": 'permit(principal, action == Action::"SubmitTask", resource) when '
            "{ resource.nope > 1 };"
        },
        headers=WAIT,
    )
    problem = assert_problem(invalid, 422, "/cedar")
    assert "attribute `nope` on entity type `Task` not found" in problem["detail"]


def test_a_suspended_tenant_accepts_no_commands_until_reinstated(
    api: httpx.Client, tenant: str
) -> None:
    t = f"/v1/tenants/{tenant}"
    assert api.post(f"{t}/suspend", json={"reason": "unpaid"}, headers=WAIT).status_code == 200
    assert api.get(t).json()["status"] == "suspended"
    refused = api.post(
        f"{t}/models", json={"model_name": "m", "provider": "p", "kind": "chat"}, headers=WAIT
    )
    assert_problem(refused, 403, "tenant")
    assert api.post(f"{t}/reinstate", headers=WAIT).status_code == 200
    assert api.get(t).json()["status"] == "active"
    assert (
        api.post(
            f"{t}/models", json={"model_name": "m", "provider": "p", "kind": "chat"}, headers=WAIT
        ).status_code
        == 201
    )


def test_an_unknown_tenant_is_refused_at_the_edge(api: httpx.Client, settings: Settings) -> None:
    before = commands_high_watermark(settings)
    response = api.post(
        f"/v1/tenants/{new_tenant_id()}/models",
        json={"model_name": "m", "provider": "p", "kind": "chat"},
    )
    assert_problem(response, 404, "tenant")
    assert commands_high_watermark(settings) == before


def test_concurrent_writers_with_the_same_expected_version_one_wins(
    system: str, api: httpx.Client, tenant: str
) -> None:
    """Eight callers read version 1 and each adds a user with If-Match: 1."""
    version = api.get(f"/v1/tenants/{tenant}").json()["version"]

    def add(i: int) -> httpx.Response:
        with admin_client(system, timeout=30) as client:
            return client.post(
                f"/v1/tenants/{tenant}/users",
                json={"user_id": f"u{i}", "display_name": f"U{i}", "roles": ["viewer"]},
                headers={**WAIT, "If-Match": f'"{version}"'},
            )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(add, range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7, [r.text for r in responses]
    conflicts = [r.json() for r in responses if r.status_code == 409]
    assert {c["current_version"] for c in conflicts} == {version + 1}
    assert len(api.get(f"/v1/tenants/{tenant}/users").json()["items"]) == 1


def test_the_openapi_document_lists_every_command_endpoint(api: httpx.Client) -> None:
    from api.command_routes import COMMAND_ROUTES

    paths = api.get("/openapi.json").json()["paths"]
    for route in COMMAND_ROUTES:
        operation = paths[route.path][route.method.lower()]
        assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]


def test_malformed_bodies_on_every_endpoint_name_the_field(api: httpx.Client, tenant: str) -> None:
    t = f"/v1/tenants/{tenant}"
    assert_problem(
        api.post(f"{t}/agents", json={"manifest": {"agent_name": "x"}}), 422, "/manifest/version"
    )
    assert_problem(
        api.post(f"{t}/models", json={"model_name": "m", "provider": "p", "kind": "telepathy"}),
        422,
        "/kind",
    )
    assert_problem(
        api.post(f"{t}/tasks", json={"agent_name": "a", "input": "{}", "deadline_ms": "soon"}),
        422,
        "/deadline_ms",
    )
    assert_problem(
        api.post(f"{t}/suspend", content=b"{", headers={"content-type": "application/json"}),
        400,
        "",
    )


def test_another_tenants_agent_and_module_are_invisible(api: httpx.Client, tenant: str) -> None:
    """Tenant B names tenant A's agent and A's module: both are unknown to B."""
    a = f"/v1/tenants/{tenant}"
    assert (
        api.post(f"{a}/agents", json={"manifest": manifest("shared")}, headers=WAIT).status_code
        == 201
    )
    other = new_tenant_id()
    assert (
        api.post(
            "/v1/tenants", json={"tenant_id": other, "display_name": "B"}, headers=WAIT
        ).status_code
        == 201
    )
    b = f"/v1/tenants/{other}"
    task = api.post(f"{b}/tasks", json={"agent_name": "shared", "input": "{}"}, headers=WAIT)
    assert_problem(task, 404, "/agent_name")
    module = api.post(f"{b}/agents", json={"manifest": manifest("mine")}, headers=WAIT)
    assert_problem(module, 404, "/manifest/module_digest")
    assert_problem(api.get(f"{b}/modules/{DIGEST}"), 404, "digest")
