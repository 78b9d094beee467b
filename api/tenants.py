"""Tenant queries: `GET /v1/tenants/{tenant}` and its users, from the read model."""

from __future__ import annotations

from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.listing import Listing, fetch_page
from api.problems import Problem
from api.state import ApiState


async def get_tenant(request: Request) -> Response:
    state: ApiState = request.app.state.api
    tenant_id = request.path_params["tenant"]
    async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "select tenant_id, display_name, labels, limits, status, suspension_reason, version,"
            " created_at, updated_at from tenants where tenant_id = %s",
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


USERS = Listing(
    "tenant_users",
    ("user_id", "display_name", "roles", "added_at"),
    ("user_id",),
    {"tenant": "tenant_id"},
)


async def list_users(request: Request) -> Response:
    """The tenant's users by id, a page at a time like every list (``limit``, ``cursor``);
    the tenant's version is the ETag."""
    state: ApiState = request.app.state.api
    tenant_id = request.path_params["tenant"]
    sql, values, limit = USERS.query(request.path_params, request.query_params)
    async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("select version from tenants where tenant_id = %s", (tenant_id,))
        found = await cur.fetchone()
        if found is None:
            raise Problem(
                404, "not-found", "Tenant not found", f"no tenant {tenant_id}", field="tenant"
            )
        rows = await fetch_page(cur, sql, values, request.query_params)
    return JSONResponse(USERS.page(rows, limit), headers={"ETag": f'"{found["version"]}"'})
