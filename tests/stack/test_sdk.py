"""The Python SDK (sdk/aion_sdk) against the real stack: the README's tour, typed errors,
Idempotency-Key, retries after a real 429, cursor iteration, and the async client."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from aion_sdk import (
    AionClient,
    AsyncAionClient,
    Conflict,
    NotFound,
    RateLimited,
    RetryEvent,
    TaskEvent,
    Unauthorized,
    Unprocessable,
)
from aion_sdk.models import Artifact

from api.principal import PLATFORM_ADMIN
from tests.stack.identity import token
from tests.stack.test_kernel_runs import example, unit_module
from tests.stack.test_tenants_api import new_tenant_id

WAIT = 20  # seconds to wait for a decider's outcome
QUOTAS = {"fuel": 50_000_000, "memory_mb": 16, "timeout_ms": 3000}


def admin_token() -> str:
    return token("test-admin", None, (PLATFORM_ADMIN,))


def manifest(name: str, digest: str, **extra: Any) -> dict[str, Any]:
    return {"agent_name": name, "version": "1.0.0", "module_digest": digest, "abi": "reactor",
            "quotas": QUOTAS, **extra}  # fmt: skip


def new_tenant(aion: AionClient) -> str:
    tenant = new_tenant_id()
    created = aion.create_tenant(tenant, "SDK", wait=WAIT)
    assert created.http_status == 201, created
    return tenant


def test_the_tour_create_an_agent_submit_a_task_stream_it_fetch_its_output(system: str) -> None:
    with AionClient(system, token=admin_token()) as aion:
        tenant = new_tenant_id()
        created = aion.create_tenant(tenant, "SDK tour", wait=WAIT)
        assert (created.http_status, created.status) == (201, "accepted")
        assert created.location == f"/v1/tenants/{tenant}" and created.decided
        assert aion.get_tenant(tenant)["status"] == "active"

        module = aion.upload_module(tenant, example("echo"))
        assert module["digest"].startswith("sha256:") and module["size"] > 0
        assert aion.get_module(tenant, module["digest"])["size"] == module["size"]
        deployed = aion.deploy_agent(tenant, manifest("echo", module["digest"]), wait=WAIT)
        assert deployed.decided and deployed.status == "accepted", deployed

        task = aion.submit_task(tenant, "echo", {"text": "hello"}, wait=WAIT)
        assert task.http_status == 201 and task.task_id
        assert task.location == f"/v1/tenants/{tenant}/tasks/{task.task_id}"
        events = list(aion.task_events(tenant, task.task_id))
        kinds = [e.type for e in events]
        assert kinds[0] == "TaskSubmitted" and kinds[-1] == "TaskSucceeded", kinds
        assert "RunStarted" in kinds and events[-1].final
        assert [e.id for e in events] == sorted({e.id for e in events})

        run_id, artifact = find_output(aion, tenant, task.task_id)
        assert artifact["content_type"].startswith("application/json")
        output = aion.download_artifact(tenant, task.task_id, run_id, "output")
        assert json.loads(output) == {"text": "hello"}
        [run] = aion.list_runs(tenant, task.task_id).items
        assert (run["run_id"], run["status"]) == (run_id, "succeeded")
        assert aion.get_counters(tenant)["tasks_submitted"] == 1


def find_output(aion: AionClient, tenant: str, task_id: str) -> tuple[str, Artifact]:
    """The run id and the artifact of the task's output, once the read model holds it."""
    deadline = time.monotonic() + 30
    while True:
        found = [a for a in aion.list_artifacts(tenant, task_id) if a["artifact_id"] == "output"]
        if found:
            return found[0]["run_id"], found[0]
        assert time.monotonic() < deadline, "the output artifact was never listed"
        time.sleep(0.2)


def test_errors_are_typed_with_their_problem_fields(system: str) -> None:
    with AionClient(system, token=admin_token()) as aion:
        tenant = new_tenant(aion)
        with pytest.raises(NotFound) as missing:
            aion.get_task(tenant, "no-such-task")
        error = missing.value
        assert (error.status, error.code, error.field) == (404, "not-found", "task")
        assert error.title == "Task not found" and "no-such-task" in error.detail
        assert error.problem["status"] == 404

        with pytest.raises(NotFound) as no_tenant:
            aion.register_model(new_tenant_id(), "m", "local", "chat")
        assert no_tenant.value.field == "tenant"

        with pytest.raises(Unprocessable) as invalid:
            aion.create_tenant("Not A Tenant Id!", "Bad")
        assert (invalid.value.status, invalid.value.field) == (422, "/tenant_id")
        assert invalid.value.code == "invalid-field" and "tenant_id" in invalid.value.detail

        with pytest.raises(Unprocessable) as bad_kind:
            aion.register_model(tenant, "m", "local", "not-a-kind")
        assert bad_kind.value.field == "/kind"
        assert any(e["field"] == "/kind" for e in bad_kind.value.errors)

        aion.register_model(tenant, "dup", "local", "chat", wait=WAIT)
        with pytest.raises(Conflict) as exists:
            aion.register_model(tenant, "dup", "local", "chat", wait=WAIT)
        assert exists.value.code == "already-exists" and exists.value.command_id

    with AionClient(system, token="not-a-token") as stranger, pytest.raises(Unauthorized) as who:
        stranger.get_tenant(tenant)
    assert who.value.status == 401 and who.value.reason


def test_the_idempotency_key_returns_the_first_answer(system: str) -> None:
    with AionClient(system, token=admin_token()) as aion:
        tenant = new_tenant(aion)
        key = f"sdk-{uuid.uuid4()}"
        first = aion.register_model(tenant, "idem", "local", "chat", idempotency_key=key, wait=5)
        again = aion.register_model(tenant, "idem", "local", "chat", idempotency_key=key, wait=5)
        assert first.command_id == again.command_id
        assert (first.replayed, again.replayed) == (False, True)
        assert first.idempotency_key == again.idempotency_key == key
        assert again.http_status == first.http_status

        with pytest.raises(Conflict) as reused:
            aion.register_model(tenant, "other", "local", "chat", idempotency_key=key)
        assert reused.value.code == "idempotency-key-reused"
        assert reused.value.field == "Idempotency-Key"

        # Without a key of the caller's, each call gets its own: two calls, two commands.
        one = aion.register_model(tenant, "fresh-1", "local", "chat")
        two = aion.register_model(tenant, "fresh-2", "local", "chat")
        assert one.idempotency_key != two.idempotency_key
        assert one.http_status == 202 and not one.decided
        assert aion.get_command(one.command_id)["status"] in ("pending", "accepted")


def test_a_rate_limited_call_is_retried_after_its_retry_after(system: str) -> None:
    tenant = new_tenant_id()
    with AionClient(system, token=admin_token()) as admin:
        admin.create_tenant(tenant, "Limited", wait=WAIT)
    with AionClient(system, token=token("ada", tenant, ("admin",))) as ada:
        made = ada.create_api_key(tenant, "tiny", ["developer"], rate_per_s=1, burst=2,
                                  wait=WAIT)  # fmt: skip
        slow = ada.create_api_key(tenant, "slow", ["developer"], rate_per_s=0.01, burst=1,
                                  wait=WAIT)  # fmt: skip
    assert made.http_status == 201 and made.body["api_key"].startswith("aion_")

    retries: list[RetryEvent] = []
    with AionClient(system, api_key=made.body["api_key"], on_retry=retries.append) as client:
        started = time.monotonic()
        for _ in range(5):
            assert client.list_tasks(tenant).items == []
        elapsed = time.monotonic() - started
    # Two calls fit the burst; each later one was refused once, then let through after the
    # Retry-After the API named (1 s at 1/s): 5 calls, 8 attempts.
    assert [r.status for r in retries] == [429] * len(retries)
    assert len(retries) >= 2, "a key of 1/s with a burst of 2 was not refused in 5 calls"
    assert all(r.attempt == 1 for r in retries)  # the first retry of each call succeeded
    for r in retries:
        assert isinstance(r.error, RateLimited) and r.error.retry_after is not None
        assert r.delay == r.error.retry_after >= 1
    assert elapsed >= sum(r.delay for r in retries)  # it did wait as told

    # A Retry-After longer than the policy's bound is raised with it, not slept through.
    with AionClient(system, api_key=slow.body["api_key"]) as patient:
        patient.list_tasks(tenant)
        started = time.monotonic()
        with pytest.raises(RateLimited) as limited:
            patient.list_tasks(tenant)
    assert time.monotonic() - started < 5
    assert limited.value.retry_after is not None and limited.value.retry_after > 60
    assert limited.value.attempts == 1 and limited.value.code == "rate-limited"


def test_cursor_iteration_reaches_every_item_once(system: str) -> None:
    with AionClient(system, token=admin_token()) as aion:
        tenant = new_tenant(aion)
        names = [f"model-{i}" for i in range(5)]
        last = None
        for name in names:
            last = aion.register_model(tenant, name, "local", "chat", wait=WAIT)
        assert last is not None
        first = aion.list_models(tenant, limit=2, after_command=last.command_id)
        assert len(first.items) == 2 and first.has_next
        assert [len(p.items) for p in first.pages()] == [2, 2, 1]
        assert [m["model_name"] for m in first] == names
        assert [m["model_name"] for m in aion.list_models(tenant, limit=200)] == names
        assert not aion.list_models(tenant, kind="embedding").items


def test_the_async_client_runs_the_tour_and_resumes_a_stream(system: str) -> None:
    async def tour() -> tuple[list[TaskEvent], list[TaskEvent], bytes]:
        async with AsyncAionClient(system, token=admin_token()) as aion:
            tenant = new_tenant_id()
            created = await aion.create_tenant(tenant, "Async", wait=WAIT)
            assert created.http_status == 201
            module = await aion.upload_module(tenant, unit_module("progress"))
            chatty = manifest("chatty", module["digest"], capabilities=["progress"])
            assert (await aion.deploy_agent(tenant, chatty, wait=WAIT)).decided
            task = await aion.submit_task(tenant, "chatty", {}, wait=WAIT)
            assert task.http_status == 201 and task.task_id
            events = [e async for e in aion.task_events(tenant, task.task_id)]
            started = next(e.id for e in events if e.type == "RunStarted")
            resumed = [
                e async for e in aion.task_events(tenant, task.task_id, last_event_id=started)
            ]
            deadline = time.monotonic() + 30
            while True:
                page = await aion.list_artifacts(tenant, task.task_id)
                found = [a async for a in page if a["artifact_id"] == "output"]
                if found or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert found, "the output artifact was never listed"
            output = await aion.download_artifact(
                tenant, task.task_id, found[0]["run_id"], "output"
            )
            with pytest.raises(NotFound):
                await aion.get_agent(tenant, "nobody")
            return events, resumed, output

    events, resumed, output = asyncio.run(tour())
    kinds = [e.type for e in events]
    assert kinds[0] == "TaskSubmitted" and kinds[-1] == "TaskSucceeded", kinds
    progress = [e.data for e in events if e.type == "RunProgress"]
    assert progress[0]["message"] == "half" and progress[0]["percent"] == 50.0
    started = next(e.id for e in events if e.type == "RunStarted")
    assert [e.id for e in resumed] == [e.id for e in events if e.id > started]
    assert json.loads(output) == {}


def test_the_operations_and_admin_surface(system: str) -> None:
    """The endpoints added with the console, through the SDK: tenants by prefix, users by page,
    the task's hot status, the policy what-if's refusal, /health, and the live document whose
    operationIds are the SDK's method names."""
    with AionClient(system, token=admin_token()) as aion:
        tenant = new_tenant(aion)
        for user in ("cy", "ab", "bo"):
            aion.add_user(tenant, user, user.upper(), ["viewer"], wait=WAIT)
        page = aion.list_users(tenant, limit=2)
        assert [u["user_id"] for u in page.items] == ["ab", "bo"] and page.has_next
        assert [u["user_id"] for u in page] == ["ab", "bo", "cy"]

        assert [t["tenant_id"] for t in aion.list_tenants(prefix=tenant)] == [tenant]

        module = aion.upload_module(tenant, example("echo"))
        aion.deploy_agent(tenant, manifest("echo", module["digest"]), wait=WAIT)
        task = aion.submit_task(tenant, "echo", {"text": "status"}, wait=WAIT)
        assert task.task_id is not None
        list(aion.task_events(tenant, task.task_id))  # until its final event
        assert aion.get_task_status(tenant, task.task_id)["status"] == "succeeded"

        with pytest.raises(Unprocessable) as refused:
            aion.simulate_policy(tenant, "p1", "forbid(principal, action, resource) when {")
        assert refused.value.field == "/cedar"

        health = aion.health()
        assert health["services"]["kafka"]["status"] == "ok"
        assert isinstance(health["dead_letters"], int)

        document = aion.openapi()
        names = {e["operationId"] for ops in document["paths"].values() for e in ops.values()}
        assert {"list_tenants", "simulate_policy", "get_task_status", "health"} <= names
        assert all(callable(getattr(aion, name, None)) for name in names)
