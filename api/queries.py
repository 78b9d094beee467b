"""Queries over the read models: lists with filters and cursors, items with ETags.

Everything here reads Postgres only (never Kafka, never the write side). Every query is scoped
by the tenant in the path; a path naming another tenant's entity finds nothing. A caller that
just sent a command can read its own write with ``?after_command=<command id>``: the query
waits (up to 10 s) until the projection has recorded that command's outcome, which it does in
the same transaction as the rows the command changed (decision 15). The wait holds no database
connection, is capped per caller, and an unknown command is not waited for (api/read_waits.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncCursor
from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.listing import Listing, fetch_page, jsonable
from api.problems import Problem
from api.read_targets import read_target
from api.state import ApiState

T = "/v1/tenants/{tenant}"
TENANT = {"tenant": "tenant_id"}

MODEL_COLUMNS = ("model_name", "provider", "kind", "parameters", "description", "status",
                 "version", "created_at", "updated_at")  # fmt: skip
AGENT_COLUMNS = ("agent_name", "status", "agent_version", "manifest", "description", "labels",
                 "version", "retired_reason", "created_at", "updated_at")  # fmt: skip
POLICY_COLUMNS = ("policy_id", "cedar", "description", "status", "policy_version", "version",
                  "created_at", "updated_at")  # fmt: skip
TASK_COLUMNS = ("task_id", "agent_name", "agent_version", "status", "input", "input_bytes",
                "labels", "deadline_ms", "submitted_by", "enforcement_id", "attempt", "run_id",
                "output_digest", "reason", "version", "submitted_at", "updated_at",
                "finished_at")  # fmt: skip
RUN_COLUMNS = ("run_id", "attempt", "status", "worker", "output_digest", "output_bytes",
               "fuel_used", "duration_ms", "failure_reason", "failure_message",
               "progress_percent", "progress_message", "scheduled_at", "started_at",
               "finished_at")  # fmt: skip
ARTIFACT_COLUMNS = ("run_id", "artifact_id", "digest", "size_bytes", "content_type",
                    "stored_at")  # fmt: skip
ENFORCEMENT_COLUMNS = ("enforcement_id", "subject_type", "subject_id", "action", "decision",
                       "policy_ids", "diagnostics", "decided_at")  # fmt: skip


@dataclass(frozen=True)
class Item:
    """One entity by its key, with its aggregate version as the ETag."""

    table: str
    columns: tuple[str, ...]
    key: dict[str, str]  # path parameter -> column
    noun: str

    def sql(self) -> str:
        where = " and ".join(f"{column} = %s" for column in self.key.values())
        return f"select {', '.join(self.columns)} from {self.table} where {where}"


API_KEY_COLUMNS = ("key_id", "name", "roles", "status", "rate_per_s", "burst", "expires_at",
                   "revoked_reason", "created_by", "version", "created_at",
                   "updated_at")  # fmt: skip

LISTS: dict[str, tuple[Listing, str]] = {
    f"{T}/api-keys": (
        Listing("api_keys", API_KEY_COLUMNS, ("key_id",), TENANT, {"status": "status"}),
        "The tenant's API keys (never their secrets); filter by status",
    ),
    f"{T}/models": (
        Listing("models", MODEL_COLUMNS, ("model_name",), TENANT, {"kind": "kind"}),
        "The tenant's models, by name",
    ),
    f"{T}/agents": (
        Listing("agents", AGENT_COLUMNS, ("agent_name",), TENANT, {"status": "status"}),
        "The tenant's agents, by name; filter by status",
    ),
    f"{T}/agents/{{agent}}/versions": (
        Listing(
            "agent_versions",
            ("agent_version", "manifest", "module_digest", "deployed_at"),
            ("deployed_at", "agent_version"),
            {**TENANT, "agent": "agent_name"},
        ),
        "Every manifest the agent was deployed with, oldest first",
    ),
    f"{T}/policies": (
        Listing("policies", POLICY_COLUMNS, ("policy_id",), TENANT, {"status": "status"}),
        "The tenant's Cedar policies, by id; filter by status",
    ),
    f"{T}/tasks": (
        Listing(
            "tasks",
            TASK_COLUMNS,
            ("submitted_at", "task_id"),
            TENANT,
            {"status": "status", "agent_name": "agent_name"},
            descending=True,
        ),
        "The tenant's tasks, newest first; filter by status and agent_name",
    ),
    f"{T}/tasks/{{task}}/runs": (
        Listing("runs", RUN_COLUMNS, ("attempt", "run_id"), {**TENANT, "task": "task_id"}),
        "The task's runs (attempts), first first",
    ),
    f"{T}/tasks/{{task}}/artifacts": (
        Listing(
            "artifacts",
            ARTIFACT_COLUMNS,
            ("run_id", "artifact_id"),
            {**TENANT, "task": "task_id"},
            {"run_id": "run_id"},
        ),
        "The task's artifacts (outputs, logs, files), by run",
    ),
    f"{T}/enforcements": (
        Listing(
            "enforcements",
            ENFORCEMENT_COLUMNS,
            ("decided_at", "enforcement_id"),
            TENANT,
            {"decision": "decision", "subject_type": "subject_type", "subject_id": "subject_id"},
            descending=True,
        ),
        "Policy decisions, newest first; filter by decision, subject_type, subject_id",
    ),
}

ITEMS: dict[str, Item] = {
    f"{T}/models/{{model}}": Item(
        "models", MODEL_COLUMNS, {**TENANT, "model": "model_name"}, "model"
    ),
    f"{T}/agents/{{agent}}": Item(
        "agents", AGENT_COLUMNS, {**TENANT, "agent": "agent_name"}, "agent"
    ),
    f"{T}/policies/{{policy}}": Item(
        "policies", POLICY_COLUMNS, {**TENANT, "policy": "policy_id"}, "policy"
    ),
    f"{T}/tasks/{{task}}": Item("tasks", TASK_COLUMNS, {**TENANT, "task": "task_id"}, "task"),
}


async def after_command(request: Request) -> dict[str, str]:
    """Wait for the read model to include a command's effects (``after_command=<id>``) or an
    event's position (``after=<topic:partition:offset>``); say if it did not in time. Called
    before the read takes its connection: a waiting read holds none (api/read_waits.py)."""
    target = read_target(request.query_params)
    if target is None:
        return {}
    state: ApiState = request.app.state.api
    principal = getattr(request.state, "principal", None)
    return {"Aion-Consistency": await state.waits.wait(principal, target)}


async def require_tenant(cur: AsyncCursor[Any], tenant_id: str) -> None:
    await cur.execute("select 1 from tenants where tenant_id = %s", (tenant_id,))
    if await cur.fetchone() is None:
        raise Problem(
            404, "not-found", "Tenant not found", f"no tenant {tenant_id}", field="tenant"
        )


def list_endpoint(listing: Listing) -> Any:
    async def endpoint(request: Request) -> Response:
        state: ApiState = request.app.state.api
        path = dict(request.path_params)
        sql, values, limit = listing.query(path, dict(request.query_params))
        headers = await after_command(request)
        async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await require_tenant(cur, path["tenant"])
            rows = await fetch_page(cur, sql, values, request.query_params)
        return JSONResponse(listing.page(rows, limit), headers=headers)

    return endpoint


def item_endpoint(item: Item) -> Any:
    async def endpoint(request: Request) -> Response:
        state: ApiState = request.app.state.api
        path = dict(request.path_params)
        headers = await after_command(request)
        async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await require_tenant(cur, path["tenant"])
            await cur.execute(item.sql(), [path[name] for name in item.key])
            row = await cur.fetchone()
        if row is None:
            name = path[list(item.key)[-1]]
            raise Problem(
                404,
                "not-found",
                f"{item.noun.capitalize()} not found",
                f"no {item.noun} {name} in tenant {path['tenant']}",
                field=list(item.key)[-1],
            )
        etag = f'"{row["version"]}"'
        headers["ETag"] = etag
        if etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        return JSONResponse(jsonable(row), headers=headers)

    return endpoint


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def routes() -> list[Route]:
    found = [Route(path, list_endpoint(lst), methods=["GET"]) for path, (lst, _) in LISTS.items()]
    found += [Route(path, item_endpoint(item), methods=["GET"]) for path, item in ITEMS.items()]
    return found
