"""`GET /v1/tenants`: every tenant, for platform admins (the console's tenants page).

The route names no tenant, so its Cedar resource is the platform: only a platform admin may
call it. Ordered by tenant id, with ``status`` and ``prefix`` as filters and cursors like every
list.
"""

from __future__ import annotations

from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.listing import decode_cursor, encode_cursor, fetch_page, jsonable, parse_limit
from api.state import ApiState

PATH = "/v1/tenants"
TENANT_COLUMNS = ("tenant_id", "display_name", "labels", "status", "suspension_reason",
                  "version", "created_at", "updated_at")  # fmt: skip


def like_prefix(prefix: str) -> str:
    """A LIKE pattern for ids starting with ``prefix`` (its own % and _ taken literally)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def list_tenants(request: Request) -> Response:
    """Every tenant, by id (platform admins only: the resource is the platform); filters
    ``status`` and ``prefix`` (ids starting with it), cursors as on every list."""
    state: ApiState = request.app.state.api
    params = request.query_params
    limit = parse_limit(params.get("limit"))
    where, values = ["true"], []
    if "status" in params:
        where.append("status = %s")
        values.append(params["status"])
    if params.get("prefix"):
        where.append("tenant_id like %s")
        values.append(like_prefix(params["prefix"]))
    if params.get("cursor"):
        where.append("tenant_id > %s")
        values.append(str(decode_cursor(params["cursor"], 1)[0]))
    sql = (
        f"select {', '.join(TENANT_COLUMNS)} from tenants where {' and '.join(where)}"
        f" order by tenant_id limit {limit + 1}"
    )
    async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = await fetch_page(cur, sql, values, params)
    items = rows[:limit]
    next_cursor = encode_cursor([items[-1]["tenant_id"]]) if len(rows) > limit else None
    return JSONResponse({"items": [jsonable(r) for r in items], "next_cursor": next_cursor})
