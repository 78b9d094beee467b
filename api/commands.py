"""Submitting a command: envelope, Avro, produce to aion.commands, and optionally wait for the
decider's outcome. Also `GET /v1/commands/{id}`."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from opentelemetry import propagate, trace
from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.problems import Problem
from api.state import ApiState
from schemas.topics import COMMANDS

tracer = trace.get_tracer("aion.api")
MAX_WAIT_SECONDS = 30.0
PENDING_TTL_SECONDS = 7 * 24 * 3600
# The HTTP status of each rejection code the deciders use.
REJECTION_STATUS = {
    "already_exists": 409,
    "version_conflict": 409,
    "not_found": 404,
    "invalid": 422,
    "suspended": 403,
}


def requested_wait(request: Request) -> float:
    """Seconds to wait for the outcome: `Prefer: wait=N` (RFC 7240) or `?wait=N`."""
    raw = request.query_params.get("wait")
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


async def submit(
    request: Request,
    record_name: str,
    *,
    tenant_id: str,
    aggregate_type: str,
    aggregate_id: str,
    payload: dict[str, Any],
    created_location: str | None = None,
) -> Response:
    wait = requested_wait(request)
    command_id = str(uuid.uuid4())
    attributes = {
        "messaging.system": "kafka",
        "messaging.destination.name": COMMANDS,
        "aion.command.id": command_id,
        "aion.command.type": record_name,
    }
    with tracer.start_as_current_span(
        f"send {COMMANDS}", kind=trace.SpanKind.PRODUCER, attributes=attributes
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return await _submit(
            request,
            record_name,
            command_id,
            carrier,
            wait,
            tenant_id=tenant_id,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            payload=payload,
            created_location=created_location,
        )


async def _submit(
    request: Request,
    record_name: str,
    command_id: str,
    carrier: dict[str, str],
    wait: float,
    *,
    tenant_id: str,
    aggregate_type: str,
    aggregate_id: str,
    payload: dict[str, Any],
    created_location: str | None,
) -> Response:
    state: ApiState = request.app.state.api
    envelope = {
        "command_id": command_id,
        "command_type": record_name,
        "correlation_id": request.headers.get("x-correlation-id") or command_id,
        "tenant_id": tenant_id,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "expected_version": None,
        "idempotency_key": request.headers.get("idempotency-key"),
        "issued_at": int(time.time() * 1000),
        "actor": "anonymous",  # authentication arrives with the security issue
        "traceparent": carrier.get("traceparent"),
        "tracestate": carrier.get("tracestate"),
    }
    value = state.codec.encode(COMMANDS, record_name, {"envelope": envelope, **payload})
    delivered = await state.producer.send(
        COMMANDS,
        aggregate_id.encode(),
        value,
        {"aion-type": record_name.encode(), "aion-command-id": command_id.encode()},
    )
    position = {
        "topic": delivered.topic,
        "partition": delivered.partition,
        "offset": delivered.offset,
    }
    await state.redis.set(
        f"aion:command:{command_id}",
        f"{delivered.partition}:{delivered.offset}",
        ex=PENDING_TTL_SECONDS,
    )
    status_url = f"/v1/commands/{command_id}"
    if wait > 0:
        outcome = await wait_for_outcome(state, command_id, wait)
        if outcome is not None:
            return outcome_response(outcome, created_location)
    return JSONResponse(
        {
            "command_id": command_id,
            "status": "pending",
            "status_url": status_url,
            "position": position,
        },
        status_code=202,
        headers={"Location": status_url},
    )


async def load_outcome(state: ApiState, command_id: str) -> dict[str, Any] | None:
    async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "select command_id, command_type, tenant_id, aggregate_type, aggregate_id, status,"
            " code, reason, field, aggregate_version, event_ids, topic, partition,"
            ' "offset", decided_at from command_outcomes where command_id = %s',
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


def outcome_response(outcome: dict[str, Any], created_location: str | None = None) -> Response:
    if outcome["status"] == "rejected":
        code = outcome["code"] or "rejected"
        raise Problem(
            REJECTION_STATUS.get(code, 422),
            code.replace("_", "-"),
            "Command rejected",
            outcome["reason"] or code,
            field=outcome["field"],
            command_id=outcome["command_id"],
            current_version=outcome["aggregate_version"],
        )
    headers = {"Location": created_location} if created_location else {}
    return JSONResponse(outcome, status_code=201 if created_location else 200, headers=headers)


async def get_command(request: Request) -> Response:
    state: ApiState = request.app.state.api
    command_id = request.path_params["command_id"]
    outcome = await load_outcome(state, command_id)
    if outcome is not None:
        return JSONResponse(outcome)
    pending = await state.redis.get(f"aion:command:{command_id}")
    if pending is None:
        raise Problem(
            404,
            "not-found",
            "Unknown command",
            f"no command {command_id} is known",
            field="command_id",
        )
    partition, offset = (pending.decode() if isinstance(pending, bytes) else pending).split(":")
    return JSONResponse(
        {
            "command_id": command_id,
            "status": "pending",
            "position": {"topic": COMMANDS, "partition": int(partition), "offset": int(offset)},
        }
    )
