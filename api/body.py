"""Reading a request body: size-limited, JSON, and checked against its command's Avro schema."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from api.problems import Problem
from schemas import catalog
from schemas.validation import check_record, with_defaults


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    content_type = request.headers.get("content-type", "")
    if content_type and not content_type.split(";")[0].strip().endswith(("/json", "+json")):
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"send application/json, not {content_type}",
        )
    raw = await read_limited(request, limit, _too_large(limit))
    if not raw.strip():
        return {}  # no body: every required field will be reported missing by name
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = (
            f" at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise Problem(
            400, "malformed-json", "Malformed JSON", f"the body is not valid JSON{where}", field=""
        ) from exc


async def read_limited(request: Request, limit: int, too_large: Problem) -> bytes:
    """The raw body, refused as soon as it passes ``limit`` (Content-Length may be absent)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "body-too-large",
        "Request body too large",
        f"the body exceeds the limit of {limit} bytes",
        field="",
    )


def command_payload(record_name: str, body: Any) -> dict[str, Any]:
    """The body as the payload of a command record, or a 422 naming every bad field."""
    fields = catalog.record(record_name).payload_fields
    problems = check_record(fields, body)
    if problems:
        first = problems[0]
        raise Problem(
            422,
            "invalid-field",
            "Invalid request body",
            f"{first.field}: {first.message}",
            field=first.field,
            errors=[{"field": p.field, "message": p.message} for p in problems],
        )
    return with_defaults(fields, body)
