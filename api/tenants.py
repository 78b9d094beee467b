"""Tenants: `POST /v1/tenants` (a CreateTenant command) and `GET /v1/tenants/{tenant}`."""

from __future__ import annotations

from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.body import command_payload, read_json
from api.commands import CommandRequest, submit
from api.problems import Problem
from api.state import ApiState
from commands import tenant


async def create_tenant(request: Request) -> Response:
    state: ApiState = request.app.state.api
    body = await read_json(request, state.settings.max_body_bytes)
    payload = command_payload(tenant.CREATE, body)
    invalid = tenant.check_create(payload)
    if invalid:
        raise Problem(
            422, "invalid-field", "Invalid request body", invalid.reason, field=invalid.field
        )
    tenant_id = payload["tenant_id"]
    return await submit(
        request,
        CommandRequest(
            tenant.CREATE,
            tenant_id,
            tenant.AGGREGATE,
            tenant_id,
            payload,
            created_location=f"/v1/tenants/{tenant_id}",
        ),
    )


async def get_tenant(request: Request) -> Response:
    state: ApiState = request.app.state.api
    tenant_id = request.path_params["tenant"]
    async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "select tenant_id, display_name, labels, status, version, created_at, updated_at"
            " from tenants where tenant_id = %s",
            (tenant_id,),
        )
        row = await cur.fetchone()
    if row is None:
        raise Problem(
            404, "not-found", "Tenant not found", f"no tenant {tenant_id}", field="tenant"
        )
    row["created_at"] = row["created_at"].isoformat()
    row["updated_at"] = row["updated_at"].isoformat()
    return JSONResponse(row, headers={"ETag": f'"{row["version"]}"'})
