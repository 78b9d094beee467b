"""Request bodies against Avro types: every problem names its field as a JSON pointer."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.catalog import record
from schemas.validation import FieldProblem, check_record, check_value, with_defaults

CREATE_TENANT = record("aion.tenant.CreateTenant").payload_fields


def fields_of(problems: list[FieldProblem]) -> list[str]:
    return [p.field for p in problems]


# --- the real CreateTenant payload -------------------------------------------------------------


def test_valid_create_tenant_body_has_no_problems() -> None:
    body = {"tenant_id": "acme", "display_name": "Acme", "labels": {"team": "core"}}
    assert check_record(CREATE_TENANT, body) == []
    assert check_record(CREATE_TENANT, {"tenant_id": "acme", "display_name": "Acme"}) == []


def test_missing_required_fields_are_each_named() -> None:
    problems = check_record(CREATE_TENANT, {})
    assert problems == [
        FieldProblem("/tenant_id", "required field is missing"),
        FieldProblem("/display_name", "required field is missing"),
    ]


def test_unknown_field_is_named() -> None:
    body = {"tenant_id": "acme", "display_name": "A", "zeta": 1, "alpha": 2}
    assert check_record(CREATE_TENANT, body) == [
        FieldProblem("/alpha", "unknown field"),
        FieldProblem("/zeta", "unknown field"),
    ]


def test_string_field_given_a_number() -> None:
    problems = check_record(CREATE_TENANT, {"tenant_id": 42, "display_name": "A"})
    assert problems == [FieldProblem("/tenant_id", "expected string, got number")]


def test_string_field_given_null() -> None:
    problems = check_record(CREATE_TENANT, {"tenant_id": "acme", "display_name": None})
    assert problems == [FieldProblem("/display_name", "expected string, got null")]


def test_map_value_of_wrong_type_is_named_by_its_key() -> None:
    body = {"tenant_id": "acme", "display_name": "A", "labels": {"ok": "x", "team": 3}}
    assert check_record(CREATE_TENANT, body) == [
        FieldProblem("/labels/team", "expected string, got number")
    ]


def test_map_key_with_slash_and_tilde_is_escaped_in_the_pointer() -> None:
    """RFC 6901: '~' becomes '~0' and '/' becomes '~1'."""
    body = {"tenant_id": "acme", "display_name": "A", "labels": {"a/b": 1, "c~d": True}}
    assert fields_of(check_record(CREATE_TENANT, body)) == ["/labels/a~1b", "/labels/c~0d"]


def test_labels_not_an_object() -> None:
    body = {"tenant_id": "acme", "display_name": "A", "labels": ["x"]}
    assert check_record(CREATE_TENANT, body) == [
        FieldProblem("/labels", "expected object, got array")
    ]


@pytest.mark.parametrize(
    ("body", "got"),
    [([], "array"), ("acme", "string"), (None, "null"), (3, "number"), (True, "boolean")],
)
def test_non_object_body_is_a_problem_at_the_root(body: Any, got: str) -> None:
    assert check_record(CREATE_TENANT, body) == [FieldProblem("/", f"expected object, got {got}")]


def test_every_problem_is_reported_not_just_the_first() -> None:
    body = {"tenant_id": 1, "labels": {"k": 2}, "extra": 0}
    assert fields_of(check_record(CREATE_TENANT, body)) == [
        "/extra",
        "/tenant_id",
        "/display_name",
        "/labels/k",
    ]


def test_with_defaults_fills_labels_and_drops_nothing_given() -> None:
    body = {"tenant_id": "acme", "display_name": "A"}
    limits = next(f["default"] for f in CREATE_TENANT if f["name"] == "limits")
    assert with_defaults(CREATE_TENANT, body) == {
        "tenant_id": "acme",
        "display_name": "A",
        "labels": {},
        "limits": limits,
    }
    given = {"tenant_id": "acme", "display_name": "A", "labels": {"k": "v"}, "limits": limits}
    assert with_defaults(CREATE_TENANT, given) == given


def test_with_defaults_does_not_share_the_schema_default() -> None:
    fields = [{"name": "labels", "type": {"type": "map", "values": "string"}, "default": {}}]
    body = with_defaults(fields, {})
    body["labels"]["leak"] = "x"
    assert fields[0]["default"] == {}


# --- hand-written Avro types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("int", True, "expected an integer, got boolean"),
        ("long", False, "expected an integer, got boolean"),
        ("int", 1.5, "expected an integer, got number"),
        ("int", "1", "expected an integer, got string"),
        ("int", 2**31, f"{2**31} is out of range for int"),
        ("int", -(2**31) - 1, f"{-(2**31) - 1} is out of range for int"),
        ("long", 2**63, f"{2**63} is out of range for long"),
        ("boolean", 0, "expected boolean, got number"),
        ("double", True, "expected double, got boolean"),
        ("float", "1.0", "expected float, got string"),
        ("string", 1, "expected string, got number"),
        ("null", 0, "expected null, got number"),
        ("bytes", [], "expected bytes, got array"),
    ],
)
def test_primitive_mismatch(kind: str, value: Any, message: str) -> None:
    assert check_value(kind, value, "/f") == [FieldProblem("/f", message)]


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("int", 2**31 - 1),
        ("int", -(2**31)),
        ("long", 2**63 - 1),
        ("double", 1),
        ("float", 1.5),
        ("boolean", False),
        ("null", None),
        ({"type": "long", "logicalType": "timestamp-millis"}, 1_700_000_000_000),
    ],
)
def test_primitive_accepted(kind: Any, value: Any) -> None:
    assert check_value(kind, value, "/f") == []


def test_logical_type_checks_its_underlying_type() -> None:
    kind = {"type": "long", "logicalType": "timestamp-millis"}
    assert check_value(kind, "2024-01-01", "/at") == [
        FieldProblem("/at", "expected an integer, got string")
    ]


def test_array_items_are_named_by_index() -> None:
    kind = {"type": "array", "items": "int"}
    assert check_value(kind, [1, "two", 3, None], "/items") == [
        FieldProblem("/items/1", "expected an integer, got string"),
        FieldProblem("/items/3", "expected an integer, got null"),
    ]
    assert check_value(kind, {"0": 1}, "/items") == [
        FieldProblem("/items", "expected array, got object")
    ]


def test_enum() -> None:
    kind = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}
    assert check_value(kind, "GREEN", "/color") == []
    assert check_value(kind, "BLUE", "/color") == [
        FieldProblem("/color", "must be one of RED, GREEN")
    ]
    assert check_value(kind, 1, "/color") == [FieldProblem("/color", "must be one of RED, GREEN")]


def test_nullable_union() -> None:
    kind = ["null", "string"]
    assert check_value(kind, None, "/note") == []
    assert check_value(kind, "x", "/note") == []
    # One non-null branch: the branch's own message, which is more precise.
    assert check_value(kind, 5, "/note") == [FieldProblem("/note", "expected string, got number")]


def test_multi_branch_union() -> None:
    kind = ["null", "string", "long"]
    assert check_value(kind, 7, "/v") == []
    assert check_value(kind, "7", "/v") == []
    assert check_value(kind, [7], "/v") == [
        FieldProblem("/v", "expected null or string or long, got array")
    ]


def test_union_without_null_refuses_null() -> None:
    assert check_value(["string", "long"], None, "/v") == [
        FieldProblem("/v", "expected string or long, got null")
    ]


def test_nested_record_pointer() -> None:
    fields = [
        {
            "name": "owner",
            "type": {
                "type": "record",
                "name": "Owner",
                "fields": [
                    {"name": "email", "type": "string"},
                    {"name": "tags", "type": {"type": "array", "items": "string"}},
                ],
            },
        },
    ]
    body = {"owner": {"email": 1, "tags": ["a", 2], "x": 0}}
    assert check_record(fields, body) == [
        FieldProblem("/owner/x", "unknown field"),
        FieldProblem("/owner/email", "expected string, got number"),
        FieldProblem("/owner/tags/1", "expected string, got number"),
    ]


def test_field_with_default_may_be_omitted_but_not_mistyped() -> None:
    fields = [{"name": "note", "type": ["null", "string"], "default": None}]
    assert check_record(fields, {}) == []
    assert check_record(fields, {"note": None}) == []
    assert check_record(fields, {"note": 1}) == [
        FieldProblem("/note", "expected string, got number")
    ]
    assert with_defaults(fields, {}) == {"note": None}


def test_root_value_problem_is_at_slash() -> None:
    assert check_value("string", 1, "") == [FieldProblem("/", "expected string, got number")]
