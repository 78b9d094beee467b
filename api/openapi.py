"""`/openapi.json`, generated from the routes and the Avro schemas (no second model).

Each command route names its Avro record; its request body is that record's payload fields
translated to JSON Schema, so the document cannot drift from what the API validates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from api.listing import DEFAULT_LIMIT, MAX_LIMIT
from schemas import catalog

PROBLEM = {"$ref": "#/components/schemas/Problem"}
PROBLEM_CODES = {
    "400": "Malformed JSON or parameter",
    "404": "Not found",
    "409": "Conflict: already exists or version mismatch",
    "413": "Body too large",
    "415": "Unsupported media type",
    "422": "A field is invalid; `field` names it as a JSON pointer",
    "401": "No valid credential; `reason` says what was wrong with it",
    "403": "The caller's roles or the tenant's policies forbid it; `policies` names them",
    "429": "Rate limited; Retry-After says when to come back",
    "502": "The OIDC issuer cannot be reached, or answered what it should not",
    "503": "A service this needs is unavailable; `detail` says which and why",
}


SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An OIDC access token of the configured issuer (`aion token` locally)",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "aion_<key id>_<secret>; also accepted as a bearer token",
    },
    "session": {"type": "apiKey", "in": "cookie", "name": "aion_session"},
}
# /console: the console's static files (its data comes from the API with a credential)
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/health", "/metrics", "/openapi.json", "/auth/",
                   "/console", "/console/")  # fmt: skip


def is_public(path: str) -> bool:
    """Paths every caller may use without a credential (api/access.py lets them through)."""
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC_PREFIXES)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    command: str | None = None  # Avro record of the request body
    ok: dict[str, str] = field(default_factory=lambda: {"200": "OK"})
    errors: tuple[str, ...] = ()
    # A stable name for clients (the SDK's method names are these); a command's is its
    # record's name in snake case, e.g. aion.agent.DeployAgent -> deploy_agent.
    operation_id: str = ""
    query: tuple[str, ...] = ()  # query parameters (QUERY names the common ones)
    returns: dict[str, Any] | None = None  # the JSON Schema of a 200/201 body

    @property
    def name(self) -> str:
        if self.operation_id:
            return self.operation_id
        if self.command:
            return snake_case(self.command.rsplit(".", 1)[-1])
        words = [w.strip("{}") for w in self.path.split("/") if w and w != "v1"]
        return "_".join([self.method.lower(), *words]).replace("-", "_").replace(".", "_")


def snake_case(name: str) -> str:
    """``DeployAgent`` -> ``deploy_agent``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# Query parameters many operations share; any other is a filter on the column of its name.
QUERY: dict[str, tuple[dict[str, Any], str]] = {
    "limit": (
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        "Page size",
    ),
    "cursor": ({"type": "string"}, "`next_cursor` of the previous page"),
    "after_command": (
        {"type": "string"},
        "Wait (up to 10 s) until this command's outcome is in the read model: read your write",
    ),
    "since": ({"type": "string", "format": "date-time"}, "From this time (inclusive)"),
    "until": ({"type": "string", "format": "date-time"}, "Before this time"),
    "q": ({"type": "string"}, "The text to search for"),
    "kind": ({"type": "string"}, "What to search (repeatable)"),
    "last_event_id": ({"type": "string"}, "Resume after this event (as Last-Event-ID)"),
    "reason": ({"type": "string"}, "Why (recorded in the event)"),
    "return_to": ({"type": "string"}, "A path on this server to return to after sign-in"),
    "state": ({"type": "string"}, "The sign-in's state, as /auth/login sent it to the issuer"),
    "code": ({"type": "string"}, "The issuer's authorization code"),
    "error": ({"type": "string"}, "The issuer's error, when it signed nobody in"),
}
LIST_QUERY = ("limit", "cursor", "after_command")
COMMAND_HEADERS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "schema": {"type": "string", "maxLength": 200},
        "description": "A retry with the same key and body gets the first response; another "
        "body with the key is a 409",
    },
    {
        "name": "If-Match",
        "in": "header",
        "schema": {"type": "string"},
        "description": "The aggregate version (the ETag of a read) the command expects; "
        "another version is a 409 with current_version",
    },
    {
        "name": "Prefer",
        "in": "header",
        "schema": {"type": "string"},
        "description": "wait=N: wait up to N seconds for the outcome",
    },
    {"name": "wait", "in": "query", "schema": {"type": "number"}},
]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(columns: tuple[str, ...]) -> dict[str, Any]:
    """A list response: the page's items (each with these fields) and the next page's cursor."""
    return {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {"type": "object", "properties": {c: {} for c in columns}},
            },
            "next_cursor": {"type": ["string", "null"]},
        },
        "required": ["items", "next_cursor"],
    }


def item_of(columns: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "object", "properties": {c: {} for c in columns}}


COMMON_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "field": {"type": "string", "description": "JSON pointer of the offending field"},
            "errors": {"type": "array", "items": {"type": "object"}},
            "reason": {"type": "string", "description": "401/403: what was wrong"},
            "policies": {
                "type": "array",
                "items": {"type": "string"},
                "description": "403: the tenant policies that forbade it",
            },
            "command_id": {"type": "string", "description": "A rejected command's id"},
            "current_version": {
                "type": "integer",
                "description": "409: the aggregate's version now (for If-Match)",
            },
        },
        "required": ["type", "title", "status", "detail"],
    },
    "CommandAccepted": {
        "type": "object",
        "description": "The command is on Kafka; GET status_url for its outcome",
        "properties": {
            "command_id": {"type": "string"},
            "status": {"const": "pending"},
            "status_url": {"type": "string"},
            "position": {
                "type": "object",
                "properties": {
                    "topic": {"type": "string"},
                    "partition": {"type": "integer"},
                    "offset": {"type": "integer"},
                },
            },
        },
        "required": ["command_id", "status", "status_url"],
    },
    "CommandOutcome": {
        "type": "object",
        "description": "What the command became, once the read model has it",
        "properties": {
            "command_id": {"type": "string"},
            "command_type": {"type": ["string", "null"]},
            "tenant_id": {"type": "string"},
            "aggregate_type": {"type": "string"},
            "aggregate_id": {"type": "string"},
            "status": {"enum": ["accepted", "rejected", "pending"]},
            "code": {"type": ["string", "null"]},
            "reason": {"type": ["string", "null"]},
            "field": {"type": ["string", "null"]},
            "aggregate_version": {"type": "integer"},
            "event_ids": {"type": "array", "items": {"type": "string"}},
            "decided_at": {"type": "string", "format": "date-time"},
            "event_position": {"type": "object"},
        },
        "required": ["command_id", "status"],
    },
}


def avro_to_json_schema(kind: Any) -> dict[str, Any]:
    if isinstance(kind, list):
        branches = [avro_to_json_schema(k) for k in kind]
        return branches[0] if len(branches) == 1 else {"anyOf": branches}
    if isinstance(kind, dict):
        t = kind["type"]
        if t == "record":
            return record_schema(kind["fields"])
        if t == "enum":
            return {"type": "string", "enum": kind["symbols"]}
        if t == "array":
            return {"type": "array", "items": avro_to_json_schema(kind["items"])}
        if t == "map":
            return {"type": "object", "additionalProperties": avro_to_json_schema(kind["values"])}
        return avro_to_json_schema(t)
    return {
        "null": {"type": "null"},
        "boolean": {"type": "boolean"},
        "string": {"type": "string"},
        "bytes": {"type": "string"},
        "int": {"type": "integer", "format": "int32"},
        "long": {"type": "integer", "format": "int64"},
        "float": {"type": "number"},
        "double": {"type": "number"},
    }[kind]


def record_schema(fields: list[dict[str, Any]]) -> dict[str, Any]:
    properties = {}
    for f in fields:
        prop = avro_to_json_schema(f["type"])
        if f.get("doc"):
            prop = {**prop, "description": f["doc"]}
        if "default" in f:
            prop = {**prop, "default": f["default"]}
        properties[f["name"]] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": [f["name"] for f in fields if "default" not in f],
        "additionalProperties": False,
    }


def _problems(statuses: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {
        status: {
            "description": PROBLEM_CODES[status],
            "content": {"application/problem+json": {"schema": PROBLEM}},
        }
        for status in statuses
    }


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": p[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
        for p in op.path.split("/")
        if p.startswith("{")
    ]
    for name in op.query:
        schema, text = QUERY.get(name, ({"type": "string"}, f"Only items whose {name} is this"))
        params.append({"name": name, "in": "query", "schema": schema, "description": text})
    return params


def _operation(op: Operation, components: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"operationId": op.name, "summary": op.summary, "responses": {}}
    params = _parameters(op)
    if op.command:
        name = op.command.rsplit(".", 1)[-1]
        components[name] = record_schema(catalog.record(op.command).payload_fields)
        entry["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(name)}},
        }
        params += COMMAND_HEADERS
    if params:
        entry["parameters"] = params
    for status, text in op.ok.items():
        response: dict[str, Any] = {"description": text}
        schema = None
        if op.command:
            schema = ref("CommandAccepted") if status == "202" else ref("CommandOutcome")
        elif op.returns is not None and status in ("200", "201"):
            schema = op.returns
        if schema is not None:
            response["content"] = {"application/json": {"schema": schema}}
        entry["responses"][status] = response
    entry["responses"].update(_problems(op.errors))
    if not is_public(op.path):
        entry["security"] = [{"bearer": []}, {"apiKey": []}, {"session": []}]
        for status, problem in _problems(("401", "403", "429")).items():
            entry["responses"].setdefault(status, problem)
    return entry


def document(operations: list[Operation]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = dict(COMMON_SCHEMAS)
    names: set[str] = set()
    for op in operations:
        if op.name in names:
            raise ValueError(f"operationId {op.name} is used twice")
        names.add(op.name)
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Aion control plane API", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }
