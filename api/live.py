"""Live task events over SSE, and per-tenant counters, from the Redis read model.

`GET /v1/tenants/{t}/tasks/{task}/events` streams the task's events as Server-Sent Events:
``id`` is the task's version after the event, ``event`` its type, ``data`` its fields as JSON.
A client that reconnects with ``Last-Event-ID`` (or ``?last_event_id=``) gets what came after
it, nothing twice. The stream ends after the task's final event; a comment line every 15 s
keeps idle connections open through proxies. Streams are capped per caller and per process,
on a Redis pool of their own (``api/live_streams.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.live_streams import KEEPALIVE_MS, SlotResponse
from api.principal import Principal
from api.problems import Problem
from api.queries import T, require_tenant
from api.state import ApiState
from projections.live import counters_key, status_key, stream_key

EVENTS_PATH = f"{T}/tasks/{{task}}/events"
STATUS_PATH = f"{T}/tasks/{{task}}/status"
COUNTERS_PATH = f"{T}/counters"
FINAL = {"TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskCancelled", "TaskRejected"}


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or "0"
    if not (raw.isascii() and raw.isdigit()):  # "²" is a digit to isdigit, not to int
        raise Problem(
            400,
            "invalid-last-event-id",
            "Invalid Last-Event-ID",
            "Last-Event-ID must be an event id this stream sent (a non-negative integer)",
            field="Last-Event-ID",
        )
    return int(raw)


async def task_events(request: Request) -> Response:
    state: ApiState = request.app.state.api
    tenant_id, task_id = request.path_params["tenant"], request.path_params["task"]
    after = _last_event_id(request)
    async with state.db.connection() as conn, conn.cursor() as cur:
        await require_tenant(cur, tenant_id)
        await cur.execute(
            "select 1 from tasks where tenant_id = %s and task_id = %s", (tenant_id, task_id)
        )
        known = await cur.fetchone() is not None
    if not known and not await state.redis.exists(status_key(tenant_id, task_id)):
        raise Problem(
            404, "not-found", "Task not found", f"no task {task_id} in tenant {tenant_id}",
            field="task",
        )  # fmt: skip

    principal: Principal = request.state.principal
    slot = state.streams.slots.take(principal.rate_key)  # 429 past the caller's cap

    async def stream() -> AsyncIterator[str]:
        last = f"{after}-0"
        key = stream_key(tenant_id, task_id)
        while not await request.is_disconnected():
            found: Any = await state.streams.redis.xread({key: last}, count=100, block=KEEPALIVE_MS)
            if not found:
                yield ": keep-alive\n\n"
                continue
            for entry_id, fields in found[0][1]:
                last = entry_id.decode()
                kind = fields[b"type"].decode()
                data = fields[b"data"].decode()
                yield f"id: {last.split('-')[0]}\nevent: {kind}\ndata: {data}\n\n"
                if kind in FINAL:
                    return

    return SlotResponse(slot, stream())


async def counters(request: Request) -> Response:
    state: ApiState = request.app.state.api
    tenant_id = request.path_params["tenant"]
    async with state.db.connection() as conn, conn.cursor() as cur:
        await require_tenant(cur, tenant_id)
    raw: Any = await state.redis.hgetall(counters_key(tenant_id))
    return JSONResponse({k.decode(): int(v) for k, v in sorted(raw.items())})


async def task_status(request: Request) -> Response:
    """The task's hot status from Redis (status, version, attempt, current run), cheap to poll;
    a finished task's entry expires after a day (then ask GET .../tasks/{task})."""
    state: ApiState = request.app.state.api
    tenant_id, task_id = request.path_params["tenant"], request.path_params["task"]
    raw: Any = await state.redis.hgetall(status_key(tenant_id, task_id))
    if not raw:
        raise Problem(
            404, "not-found", "Task status not found",
            f"no hot status for task {task_id} in tenant {tenant_id} (unknown, or finished"
            " more than a day ago: see the task itself)", field="task",
        )  # fmt: skip
    held = {k.decode(): v.decode() for k, v in raw.items()}
    body = {
        "task_id": task_id,
        "status": held["status"],
        "version": int(held["version"]),
        "attempt": int(held.get("attempt") or 0),
        "run_id": held.get("run_id") or None,
        "updated_at": held.get("updated_at"),
    }
    return JSONResponse(body, headers={"ETag": f'"{body["version"]}"'})
