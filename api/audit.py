"""`GET /v1/tenants/{tenant}/audit`: the tenant's audit log, newest first.

Filters: `actor`, `kind`, `outcome` (exact), `since` (inclusive) and `until` (exclusive) as
ISO 8601 times; a time without an offset is UTC. Keyset cursors over (occurred_at, position),
unique per row, so pages stay stable while the log grows. Read-your-writes as on every list:
`?after_command=<id>` or `?after=<topic:partition:offset>` (also a position on `aion.audit`,
which the core projection reads).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.listing import decode_cursor, encode_cursor, jsonable, parse_limit
from api.problems import Problem
from api.queries import after_command, require_tenant
from api.state import ApiState
from projections.audit import KINDS, OUTCOMES

PATH = "/v1/tenants/{tenant}/audit"
SUMMARY = (
    "The tenant's audit log (logins, commands, policy changes, denials, enforcements), newest"
    " first; filter by actor, kind, outcome, since, until"
)
ORDER = ("occurred_at", "topic", "partition", '"offset"')
COLUMNS = (
    "occurred_at, actor, kind, action, target, outcome, command_id, event_id, detail,"
    " topic || ':' || partition || ':' || \"offset\" as position, topic, partition,"
    ' "offset"'
)
CHOICES = {"kind": KINDS, "outcome": OUTCOMES}


def _invalid(name: str, detail: str) -> Problem:
    return Problem(422, "invalid-parameter", "Invalid query parameter", detail, field=name)


def parse_time(name: str, raw: str) -> datetime:
    """An ISO 8601 time (``2026-11-26T12:00:00Z``, ``2026-11-26``); naive means UTC."""
    try:
        at = datetime.fromisoformat(raw.strip())
    except ValueError as exc:
        raise _invalid(name, f"{name} must be an ISO 8601 time, e.g. 2026-11-26T12:00:00Z") from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _cursor(raw: str) -> list[Any]:
    """A next_cursor of this list: [occurred_at, topic, partition, offset], checked, so that a
    forged one is a 400 and never a database error."""
    after = decode_cursor(raw, len(ORDER))
    at, topic, partition, offset = after
    try:
        datetime.fromisoformat(at)
        valid = isinstance(topic, str) and all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n < bound
            for n, bound in ((partition, 2**31), (offset, 2**63))
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise Problem(
            400,
            "invalid-cursor",
            "Invalid cursor",
            "cursor must be a next_cursor value returned by this list",
            field="cursor",
        )
    return after


def audit_query(tenant: str, params: Mapping[str, str]) -> tuple[str, list[Any], int]:
    """The SQL, its parameters and the page size (one more row is fetched, as in listing)."""
    limit = parse_limit(params.get("limit"))
    where: list[str] = ["tenant_id = %s"]
    values: list[Any] = [tenant]
    for name in ("actor", "kind", "outcome"):
        if name not in params:
            continue
        allowed = CHOICES.get(name)
        if "\x00" in params[name]:
            raise _invalid(name, f"{name} must not contain NUL")
        if allowed is not None and params[name] not in allowed:
            raise _invalid(name, f"{name} must be one of {', '.join(allowed)}")
        where.append(f"{name} = %s")
        values.append(params[name])
    since = parse_time("since", params["since"]) if "since" in params else None
    until = parse_time("until", params["until"]) if "until" in params else None
    if since is not None and until is not None and since >= until:
        raise _invalid("until", "until must be later than since")
    if since is not None:
        where.append("occurred_at >= %s")
        values.append(since)
    if until is not None:
        where.append("occurred_at < %s")
        values.append(until)
    if params.get("cursor"):
        after = _cursor(params["cursor"])
        where.append(f"({', '.join(ORDER)}) < (%s::timestamptz, %s, %s, %s)")
        values.extend(after)
    order = ", ".join(f"{c} desc" for c in ORDER)
    sql = (
        f"select {COLUMNS} from audit_log where {' and '.join(where)}"
        f" order by {order} limit {limit + 1}"
    )
    return sql, values, limit


def page(rows: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(
            [last["occurred_at"], last["topic"], last["partition"], last["offset"]]
        )
    hidden = ("topic", "partition", "offset")  # shown once, as `position`
    return {
        "items": [jsonable({k: v for k, v in r.items() if k not in hidden}) for r in items],
        "next_cursor": next_cursor,
    }


async def list_audit(request: Request) -> Response:
    state: ApiState = request.app.state.api
    tenant = request.path_params["tenant"]
    sql, values, limit = audit_query(tenant, dict(request.query_params))
    headers = await after_command(request)
    async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await require_tenant(cur, tenant)
        await cur.execute(sql, values)
        rows = await cur.fetchall()
    return JSONResponse(page(rows, limit), headers=headers)
