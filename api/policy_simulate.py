"""`POST /v1/tenants/{tenant}/policies/{policy}/simulate`: what-if, before a policy is saved.

The body is the candidate Cedar text of one policy (``{"cedar": "...", "since": "7d"}``). The
tenant's active policies, with this one replaced by the candidate (or added), are evaluated
against the tenant's recorded decisions (the Cedar requests the enforcements read model keeps,
newest first, at most ``MAX_DECISIONS``), exactly as ``aion policy simulate`` does from Kafka.
Nothing is produced or changed. An invalid candidate is a 422 naming ``/cedar`` with the
validator's message, the same one PutPolicy would give.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aion.policy_simulation import CandidateError, Recorded, load_candidate, parse_duration
from aion.policy_simulation import simulate as replay
from api.body import read_json
from api.problems import Problem
from api.queries import require_tenant
from api.state import ApiState
from commands.policy import check_policy_id

PATH = "/v1/tenants/{tenant}/policies/{policy}/simulate"
SUMMARY = (
    "What-if: the tenant's recorded policy decisions evaluated again with this policy's "
    "candidate Cedar text (cedar, optional since such as 7d); changes nothing"
)
MAX_DECISIONS = 5000


def candidate_set(current: dict[str, str], policy_id: str, cedar: str) -> dict[str, str]:
    """The tenant's policies as they would be after saving ``cedar`` as ``policy_id``; the text
    is checked as PutPolicy checks it (CandidateError with the validator's message)."""
    load_candidate(cedar)  # raises CandidateError: not Cedar, or not valid for our schema
    return {**current, policy_id: cedar}


def recorded_from_row(row: dict[str, Any]) -> Recorded:
    decided: datetime = row["decided_at"]
    return Recorded(
        event_id=str(row["enforcement_id"]),
        enforcement_id=str(row["enforcement_id"]),
        subject_type=str(row["subject_type"]),
        subject_id=str(row["subject_id"]),
        action=str(row["action"]),
        decision=str(row["decision"]),
        policy_ids=tuple(row["policy_ids"] or ()),
        occurred_at_ms=int(decided.astimezone(UTC).timestamp() * 1000),
        request=json.dumps(row["request"]) if row["request"] is not None else "",
    )


def _body(raw: Any) -> tuple[str, str | None]:
    if not isinstance(raw, dict):
        raise Problem(422, "invalid-field", "Invalid request body", "expected an object", field="")
    unknown = sorted(set(raw) - {"cedar", "since"})
    if unknown:
        raise Problem(
            422, "invalid-field", "Invalid request body", "unknown field", field=f"/{unknown[0]}"
        )
    cedar, since = raw.get("cedar"), raw.get("since")
    if not isinstance(cedar, str) or not cedar.strip():
        raise Problem(
            422, "invalid-field", "Invalid request body", "cedar must not be blank", field="/cedar"
        )
    if since is not None and not isinstance(since, str):
        raise Problem(
            422, "invalid-field", "Invalid request body", "since must be a string", field="/since"
        )
    return cedar, since


async def simulate(request: Request) -> Response:
    state: ApiState = request.app.state.api
    tenant, policy_id = request.path_params["tenant"], request.path_params["policy"]
    invalid = check_policy_id(policy_id)
    if invalid:
        raise Problem(422, "invalid-parameter", "Invalid policy id", invalid.reason, field="policy")
    cedar, since = _body(await read_json(request, state.settings.max_body_bytes))
    since_at = None
    if since is not None:
        try:
            since_at = datetime.now(UTC) - parse_duration(since)
        except ValueError as exc:
            raise Problem(422, "invalid-field", "Invalid since", str(exc), field="/since") from exc
    async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await require_tenant(cur, tenant)
        await cur.execute(
            "select policy_id, cedar from policies where tenant_id = %s and status = 'active'",
            (tenant,),
        )
        current = {str(r["policy_id"]): str(r["cedar"]) for r in await cur.fetchall()}
        await cur.execute(
            "select enforcement_id, subject_type, subject_id, action, decision, policy_ids,"
            " request, decided_at from enforcements where tenant_id = %s"
            " and (%s::timestamptz is null or decided_at >= %s::timestamptz)"
            " order by decided_at desc, enforcement_id desc limit %s",
            (tenant, since_at, since_at, MAX_DECISIONS),
        )
        rows = await cur.fetchall()
    try:
        candidate = candidate_set(current, policy_id, cedar)
    except CandidateError as exc:
        raise Problem(422, "invalid-field", "Invalid Cedar", str(exc), field="/cedar") from exc
    recorded = [recorded_from_row(r) for r in reversed(rows)]
    result = await asyncio.to_thread(replay, tenant, recorded, candidate)
    body = {
        "policy_id": policy_id,
        **result.as_dict(),
        "window": {"since": since, "limit": MAX_DECISIONS, "truncated": len(rows) >= MAX_DECISIONS},
    }
    return JSONResponse(body)
