"""Submitting a command: envelope, Avro, produce to aion.commands, and optionally wait for the
decider's outcome. Also `GET /v1/commands/{id}`.

Headers a caller may send with any command:
- `Idempotency-Key`: a retry returns the first response; another body with the key is a 409.
- `If-Match: <version>` (or `"<version>"`): the decider refuses the command with a 409 and the
  current version unless the aggregate is at that version.
- `Prefer: wait=N` or `?wait=N`: answer with the outcome if it is decided within N seconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aion import telemetry, tracing
from aion.ids import new_id
from api import idempotency
from api.problems import Problem
from api.state import ApiState
from schemas.topics import COMMANDS, TASKS, command_topic

tracer = trace.get_tracer("aion.api")
MAX_WAIT_SECONDS = 30.0
# The HTTP status of each rejection code the deciders use.
REJECTION_STATUS = {
    "already_exists": 409,
    "version_conflict": 409,
    "conflict": 409,
    "not_found": 404,
    "invalid": 422,
    "suspended": 403,
    "forbidden": 403,
    "internal_error": 500,  # its handling kept failing (streams.command_failures)
}


@dataclass(frozen=True)
class CommandRequest:
    record_name: str
    tenant_id: str
    aggregate_type: str
    aggregate_id: str
    payload: dict[str, Any]
    created_location: str | None = None  # set for a create: 201 + Location when waited
    # What Idempotency-Key retries are compared on, when not the payload (the API generated
    # part of it, e.g. an API key's id and secret hash, which differ on every attempt).
    fingerprint_of: dict[str, Any] | None = None


def requested_wait(request: Request) -> float:
    """Seconds to wait for the outcome: `Prefer: wait=N` (RFC 7240) or `?wait=N`."""
    # Parsing the query string cost 4% of a command that has none.
    raw = request.query_params.get("wait") if request.scope["query_string"] else None
    for part in request.headers.get("prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            raw = value.strip()
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError as exc:
        raise Problem(
            400,
            "invalid-parameter",
            "Invalid wait",
            "wait must be a number of seconds",
            field="wait",
        ) from exc
    return max(0.0, min(seconds, MAX_WAIT_SECONDS))


def expected_version(request: Request) -> int | None:
    """`If-Match: 3` or `If-Match: "3"` (the ETag our reads return); `*` means any."""
    raw = request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not (value.isascii() and value.isdigit()):  # int() refuses "²", a digit to isdigit
        raise Problem(
            400,
            "invalid-header",
            "Invalid If-Match",
            'If-Match must be an aggregate version such as "3"',
            field="If-Match",
        )
    return int(value)


def actor_of(request: Request) -> str:
    """The authenticated caller (api/access.py put it in the request's state)."""
    principal = getattr(request.state, "principal", None)
    return "anonymous" if principal is None else str(principal.subject)


def roles_of(request: Request) -> list[str]:
    principal = getattr(request.state, "principal", None)
    return [] if principal is None else sorted(principal.roles)


async def submit(request: Request, command: CommandRequest) -> Response:
    state: ApiState = request.app.state.api
    wait = requested_wait(request)
    expected = expected_version(request)
    key = request.headers.get("idempotency-key")
    command_id = new_id()
    digest = ""
    owner = state.liveness.owner
    if key is not None:
        digest = idempotency.fingerprint(
            request.method, request.url.path, command.fingerprint_of or command.payload, expected
        )
        claim = await idempotency.claim(state.redis, command.tenant_id, key, digest, owner)
        command_id = claim.command_id
        if not claim.first:
            return replay(claim, command)
    try:
        position = await produce(
            state, command, command_id, expected, key, actor_of(request), roles_of(request)
        )
    except Exception:
        if key is not None:
            await idempotency.release(state.redis, command.tenant_id, key)
        raise
    if key is not None:
        await idempotency.produced(state.redis, command.tenant_id, key, digest, owner, position)
    response = await respond(state, command, command_id, position, wait)
    if key is not None:
        await idempotency.record(
            state.redis, command.tenant_id, key, digest, owner, position, response
        )
    return render(response)


async def produce(
    state: ApiState,
    command: CommandRequest,
    command_id: str,
    expected: int | None,
    key: str | None,
    actor: str,
    roles: list[str],
) -> dict[str, Any]:
    topic = command_topic(command.record_name)
    # The tenant is the consistency boundary; a task is its own (decision 56).
    message_key = command.aggregate_id if topic == TASKS else command.tenant_id
    attributes = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "aion.command.id": command_id,
        "aion.command.type": command.record_name,
    }
    with (
        tracing.producer_span(tracer, f"send {topic}", attributes) as carrier,
        telemetry.log_context(command_id=command_id, correlation_id=command_id),
    ):
        envelope = {
            "command_id": command_id,
            "command_type": command.record_name,
            "correlation_id": command_id,
            "tenant_id": command.tenant_id,
            "aggregate_type": command.aggregate_type,
            "aggregate_id": command.aggregate_id,
            "expected_version": expected,
            "idempotency_key": key,
            "issued_at": int(time.time() * 1000),
            "actor": actor,
            "actor_roles": roles,
            "traceparent": carrier.get("traceparent"),
            "tracestate": carrier.get("tracestate"),
        }
        value = state.codec.encode(
            topic, command.record_name, {"envelope": envelope, **command.payload}
        )
        delivered = await state.producer.send(
            topic,
            message_key.encode(),
            value,
            {
                "aion-type": command.record_name.encode(),
                "aion-command-id": command_id.encode(),
                # also in the envelope; a header serves tools that read only headers
                **{name: text.encode() for name, text in carrier.items()},
            },
        )
    where = f"{delivered.partition}:{delivered.offset}:{command.tenant_id}|{delivered.topic}"
    state.pending.add(command_id, where)
    return {"topic": delivered.topic, "partition": delivered.partition, "offset": delivered.offset}


async def respond(
    state: ApiState,
    command: CommandRequest,
    command_id: str,
    position: dict[str, Any],
    wait: float,
) -> dict[str, Any]:
    """The response as data (status, body, headers), so that it can be stored and replayed."""
    if wait > 0:
        outcome = await wait_for_outcome(state, command_id, wait)
        if outcome is not None:
            return outcome_response(outcome, command.created_location)
    status_url = f"/v1/commands/{command_id}"
    return {
        "status": 202,
        "body": {
            "command_id": command_id,
            "status": "pending",
            "status_url": status_url,
            "position": position,
        },
        "headers": {"Location": status_url},
    }


def outcome_response(outcome: dict[str, Any], created_location: str | None) -> dict[str, Any]:
    if outcome["status"] == "rejected":
        code = outcome["code"] or "rejected"
        problem = Problem(
            REJECTION_STATUS.get(code, 422),
            code.replace("_", "-"),
            "Command rejected",
            outcome["reason"] or code,
            field=outcome["field"],
            command_id=outcome["command_id"],
            current_version=outcome["aggregate_version"],
        )
        return {"status": problem.status, "body": problem.body(), "headers": {}, "problem": True}
    if created_location:
        return {"status": 201, "body": outcome, "headers": {"Location": created_location}}
    return {"status": 200, "body": outcome, "headers": {}}


def render(response: dict[str, Any]) -> Response:
    media = "application/problem+json" if response.get("problem") else "application/json"
    return JSONResponse(
        response["body"],
        status_code=response["status"],
        headers=response["headers"],
        media_type=media,
    )


def replay(claim: idempotency.Claim, command: CommandRequest) -> Response:
    """The first response again; while the first request waits for its outcome, a 202 with
    where its command was produced."""
    if claim.stored is not None:
        response = dict(claim.stored)
        response["headers"] = {**response["headers"], "Idempotent-Replayed": "true"}
        return render(response)
    status_url = f"/v1/commands/{claim.command_id}"
    return JSONResponse(
        {
            "command_id": claim.command_id,
            "status": "pending",
            "status_url": status_url,
            "position": claim.position,
        },
        status_code=202,
        headers={"Location": status_url, "Idempotent-Replayed": "true"},
    )


async def load_outcome(state: ApiState, command_id: str) -> dict[str, Any] | None:
    async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "select command_id, command_type, tenant_id, aggregate_type, aggregate_id, status,"
            " code, reason, field, aggregate_version, event_ids, topic, partition,"
            ' "offset", decided_at from command_outcomes where command_id = %s'
            # decided once every event of the outcome is in (they may come in separate batches)
            " and cardinality(event_ids) >= outcome_events",
            (command_id,),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    row["decided_at"] = row["decided_at"].isoformat()
    row["event_position"] = {
        "topic": row.pop("topic"),
        "partition": row.pop("partition"),
        "offset": row.pop("offset"),
    }
    return row


async def wait_for_outcome(
    state: ApiState, command_id: str, seconds: float
) -> dict[str, Any] | None:
    deadline = time.monotonic() + seconds
    delay = 0.01
    while True:
        outcome = await load_outcome(state, command_id)
        if outcome is not None or time.monotonic() >= deadline:
            return outcome
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.1)


def visible(request: Request, tenant_id: str) -> bool:
    """Another tenant's command is as unknown as a command that never was (no 403 oracle)."""
    principal = getattr(request.state, "principal", None)
    return principal is None or principal.platform_admin or principal.tenant == tenant_id


async def get_command(request: Request) -> Response:
    state: ApiState = request.app.state.api
    command_id = request.path_params["command_id"]
    outcome = await load_outcome(state, command_id)
    if outcome is not None and visible(request, str(outcome["tenant_id"])):
        return JSONResponse(outcome)
    pending = await state.pending.get(command_id) if outcome is None else None
    text, _, topic = (pending or "").partition("|")
    partition, _, rest = text.partition(":")
    offset, _, tenant_id = rest.partition(":")
    if pending is None or not visible(request, tenant_id):
        raise Problem(
            404,
            "not-found",
            "Unknown command",
            f"no command {command_id} is known",
            field="command_id",
        )
    return JSONResponse(
        {
            "command_id": command_id,
            "status": "pending",
            "position": {
                "topic": topic or COMMANDS,  # entries written before decision 56 had none
                "partition": int(partition),
                "offset": int(offset),
            },
        }
    )
