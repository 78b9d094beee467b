"""`/openapi.json`, generated from the routes and the Avro schemas (no second model).

Each command route names its Avro record; its request body is that record's payload fields
translated to JSON Schema, so the document cannot drift from what the API validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


def document(operations: list[Operation]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "field": {"type": "string", "description": "JSON pointer of the offending field"},
                "errors": {"type": "array", "items": {"type": "object"}},
            },
        }
    }
    for op in operations:
        entry: dict[str, Any] = {"summary": op.summary, "responses": {}}
        params = [seg[1:-1] for seg in op.path.split("/") if seg.startswith("{")]
        if params:
            entry["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        if op.command:
            name = op.command.rsplit(".", 1)[-1]
            components[name] = record_schema(catalog.record(op.command).payload_fields)
            entry["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                },
            }
            entry.setdefault("parameters", []).extend(
                [
                    {
                        "name": "Prefer",
                        "in": "header",
                        "schema": {"type": "string"},
                        "description": "wait=N: wait up to N seconds for the outcome",
                    },
                    {"name": "wait", "in": "query", "schema": {"type": "number"}},
                ]
            )
        for status, text in op.ok.items():
            entry["responses"][status] = {"description": text}
        for status in op.errors:
            entry["responses"][status] = {
                "description": PROBLEM_CODES[status],
                "content": {"application/problem+json": {"schema": PROBLEM}},
            }
        if not is_public(op.path):
            entry["security"] = [{"bearer": []}, {"apiKey": []}, {"session": []}]
            for status in ("401", "403", "429"):
                entry["responses"].setdefault(
                    status,
                    {
                        "description": PROBLEM_CODES[status],
                        "content": {"application/problem+json": {"schema": PROBLEM}},
                    },
                )
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Aion control plane API", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }
