"""Live task events over SSE (resumable) and counters, from the Redis read model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import redis

from aion.settings import Settings
from projections.live import LiveProjection, counters_key, status_key, stream_key
from projections.runner import Position
from tests.stack.test_kernel_runs import agent, unit_module
from tests.stack.test_orchestration import WAIT, new_tenant
from tests.stack.test_tenants_api import assert_problem, new_tenant_id


def sse(
    api: httpx.Client, path: str, headers: dict[str, str] | None = None
) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, event, data) of every event until the stream ends."""
    events: list[tuple[int, str, dict[str, Any]]] = []
    current: dict[str, str] = {}
    with api.stream("GET", path, headers=headers or {}, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if current:
                    events.append(
                        (int(current["id"]), current["event"], json.loads(current["data"]))
                    )
                current = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                current[name] = value
    return events


def test_a_tasks_events_stream_live_and_resume_after_the_last_event_id(
    api: httpx.Client,
) -> None:
    tenant = new_tenant(api)
    wasm = unit_module("progress")
    assert agent(api, tenant, "chatty", wasm, capabilities=["progress"]).status_code == 201
    body = {"task_id": "live-1", "agent_name": "chatty", "input": "{}"}
    assert api.post(f"/v1/tenants/{tenant}/tasks", json=body, headers=WAIT).status_code == 201
    path = f"/v1/tenants/{tenant}/tasks/live-1/events"
    events = sse(api, path)
    kinds = [kind for _, kind, _ in events]
    assert kinds[:3] == ["TaskSubmitted", "TaskAuthorized", "TaskScheduled"]
    assert kinds[-1] == "TaskSucceeded"
    assert kinds.count("RunProgress") == 2
    ids = [i for i, _, _ in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    progress = [data for _, kind, data in events if kind == "RunProgress"]
    assert progress[0]["message"] == "half" and progress[0]["percent"] == 50.0
    started = next(i for i, kind, _ in events if kind == "RunStarted")
    resumed = sse(api, path, {"Last-Event-ID": str(started)})
    assert [i for i, _, _ in resumed] == [i for i in ids if i > started]

    hot = api.get(f"/v1/tenants/{tenant}/tasks/live-1/status")
    assert hot.status_code == 200, hot.text
    assert (hot.json()["status"], hot.json()["run_id"]) == ("succeeded", "live-1.1")
    assert hot.json()["version"] == ids[-1]
    assert_problem(api.get(f"/v1/tenants/{tenant}/tasks/nope/status"), 404, "task")
    counters = api.get(f"/v1/tenants/{tenant}/counters").json()
    assert counters["tasks_submitted"] == 1 and counters["tasks_succeeded"] == 1
    assert counters["runs_started"] == 1
    assert_problem(api.get(f"{path}", headers={"Last-Event-ID": "x"}), 400, "Last-Event-ID")
    assert_problem(api.get(f"/v1/tenants/{tenant}/tasks/nope/events"), 404, "task")
    other = new_tenant(api)
    assert_problem(api.get(f"/v1/tenants/{other}/tasks/live-1/events"), 404, "task")
    assert api.get(f"/v1/tenants/{other}/counters").json() == {}


def test_the_redis_projection_applies_an_event_once(settings: Settings) -> None:
    tenant = new_tenant_id()
    live = LiveProjection(settings.redis)
    now = datetime.now(UTC)

    def event(version: int, kind: str, **payload: Any) -> dict[str, Any]:
        envelope = {"tenant_id": tenant, "aggregate_version": version, "occurred_at": now}
        return {"envelope": envelope, "task_id": "t", **payload}

    submitted = event(
        1, "TaskSubmitted", agent_name="a", agent_version="1.0.0", input="{}", input_bytes=2
    )
    at = Position("aion.events.task", 0, 0)
    for _ in range(2):
        live.apply(None, "aion.task.TaskSubmitted", submitted, at)  # type: ignore[arg-type]
    live.apply(None, "aion.task.TaskCancelled", event(2, "TaskCancelled", reason=""), at)  # type: ignore[arg-type]
    live.apply(None, "aion.task.TaskSubmitted", submitted, at)  # type: ignore[arg-type]
    client = redis.Redis.from_url(settings.redis)
    try:
        assert client.hget(counters_key(tenant), "tasks_submitted") == b"1"
        assert client.hget(status_key(tenant, "t"), "status") == b"cancelled"
        assert client.xlen(stream_key(tenant, "t")) == 2
        assert client.ttl(status_key(tenant, "t")) > 0  # finished: it expires
    finally:
        client.delete(counters_key(tenant), status_key(tenant, "t"), stream_key(tenant, "t"))
