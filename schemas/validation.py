"""Request bodies checked against the Avro schema of their command, field by field.

The Avro schema is the single source of truth: the API derives its validation (and its OpenAPI
components) from it instead of keeping a second model. Each problem names the offending field
as a JSON pointer into the body.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class FieldProblem:
    field: str  # JSON pointer, e.g. /labels/team
    message: str


def _pointer(path: str, key: str | int) -> str:
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _type_name(kind: Any) -> str:
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        return " or ".join(_type_name(k) for k in kind)
    return str(kind.get("logicalType") or kind["type"])


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def check_value(kind: Any, value: Any, path: str) -> list[FieldProblem]:
    """Problems of one value against one Avro type (empty when it conforms)."""
    if isinstance(kind, list):  # a union: the value must fit one branch
        if value is None and "null" in kind:
            return []
        branches = [k for k in kind if k != "null"]
        for branch in branches:
            if not check_value(branch, value, path):
                return []
        if len(branches) == 1:
            return check_value(branches[0], value, path)
        return [FieldProblem(path or "/", f"expected {_type_name(kind)}, got {_json_type(value)}")]
    if isinstance(kind, dict):
        return _check_complex(kind, value, path)
    return _check_primitive(kind, value, path)


def _check_primitive(kind: str, value: Any, path: str) -> list[FieldProblem]:
    ok = {
        "null": value is None,
        "boolean": isinstance(value, bool),
        "string": isinstance(value, str),
        "bytes": isinstance(value, str),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "double": isinstance(value, int | float) and not isinstance(value, bool),
    }
    if kind in ("int", "long"):
        low, high = INT_RANGE if kind == "int" else LONG_RANGE
        if not isinstance(value, int) or isinstance(value, bool):
            return [FieldProblem(path or "/", f"expected an integer, got {_json_type(value)}")]
        if not low <= value <= high:
            return [FieldProblem(path or "/", f"{value} is out of range for {kind}")]
        return []
    if not ok.get(kind, False):
        return [FieldProblem(path or "/", f"expected {kind}, got {_json_type(value)}")]
    return []


def _check_complex(kind: dict[str, Any], value: Any, path: str) -> list[FieldProblem]:
    t = kind["type"]
    if t == "record":
        return check_record(kind["fields"], value, path)
    if t == "enum":
        if value not in kind["symbols"]:
            return [FieldProblem(path or "/", f"must be one of {', '.join(kind['symbols'])}")]
        return []
    if t == "array":
        if not isinstance(value, list):
            return [FieldProblem(path or "/", f"expected array, got {_json_type(value)}")]
        return [
            p
            for i, item in enumerate(value)
            for p in check_value(kind["items"], item, _pointer(path, i))
        ]
    if t == "map":
        if not isinstance(value, dict):
            return [FieldProblem(path or "/", f"expected object, got {_json_type(value)}")]
        return [
            p for k, v in value.items() for p in check_value(kind["values"], v, _pointer(path, k))
        ]
    return check_value(t, value, path)  # a primitive with a logicalType


def check_record(fields: list[dict[str, Any]], value: Any, path: str = "") -> list[FieldProblem]:
    """Problems of a JSON object against record fields: missing, unknown, wrong type."""
    if not isinstance(value, dict):
        return [FieldProblem(path or "/", f"expected object, got {_json_type(value)}")]
    problems = []
    names = {f["name"] for f in fields}
    for unknown in sorted(set(value) - names):
        problems.append(FieldProblem(_pointer(path, unknown), "unknown field"))
    for f in fields:
        where = _pointer(path, f["name"])
        if f["name"] not in value:
            if "default" not in f:
                problems.append(FieldProblem(where, "required field is missing"))
            continue
        problems += check_value(f["type"], value[f["name"]], where)
    return problems


def with_defaults(fields: list[dict[str, Any]], value: dict[str, Any]) -> dict[str, Any]:
    """The body completed with the schema's defaults (for fields the caller left out)."""
    return {
        f["name"]: value[f["name"]] if f["name"] in value else copy.deepcopy(f.get("default"))
        for f in fields
    }
