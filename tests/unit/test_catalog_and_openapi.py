"""The Avro catalog and the OpenAPI document derived from it."""

from __future__ import annotations

import json
from typing import Any

import fastavro
import pytest

from api.app import OPERATIONS
from api.openapi import Operation, avro_to_json_schema, document, is_public, record_schema
from commands.aggregates import AGGREGATES
from commands.tenant import CREATED
from schemas import catalog

AVSC = sorted(catalog.AVRO_DIR.glob("*.avsc"))
RECORD_FILES = [
    p
    for p in AVSC
    if p.name.removesuffix(".avsc") not in catalog.ENVELOPES and catalog.is_message_file(p)
]
SHARED_FILES = [
    p
    for p in AVSC
    if p.name.removesuffix(".avsc") not in catalog.ENVELOPES and not catalog.is_message_file(p)
]


def envelope_fields(name: str) -> list[dict[str, Any]]:
    return json.loads((catalog.AVRO_DIR / f"{name}.avsc").read_text())["fields"]


# --- catalog ---------------------------------------------------------------------------------


def test_the_avro_folder_holds_both_envelopes_and_some_records() -> None:
    names = {p.name.removesuffix(".avsc") for p in AVSC}
    assert set(catalog.ENVELOPES) <= names
    assert "aion.tenant.CreateTenant" in names
    shared = {p.name.removesuffix(".avsc") for p in SHARED_FILES}
    assert set(catalog.all_records()) == names - set(catalog.ENVELOPES) - shared


@pytest.mark.parametrize("path", RECORD_FILES, ids=lambda p: p.name)
def test_every_record_loads_under_its_file_name(path: Any) -> None:
    name = path.name.removesuffix(".avsc")
    rec = catalog.record(name)
    assert rec.name == name
    assert rec.schema["name"] == name
    assert rec.schema["type"] == "record"
    assert rec.parsed["name"] == name  # fastavro accepts it
    assert json.loads(rec.text) == rec.schema


@pytest.mark.parametrize("path", RECORD_FILES, ids=lambda p: p.name)
def test_every_record_inlines_exactly_one_envelope(path: Any) -> None:
    """Each registered schema is self-contained: the envelope is inlined, not referenced."""
    rec = catalog.record(path.name.removesuffix(".avsc"))
    envelopes = [f for f in rec.schema["fields"] if f["name"] == "envelope"]
    assert len(envelopes) == 1
    kind = envelopes[0]["type"]
    assert isinstance(kind, dict)
    assert kind["name"] in catalog.ENVELOPES
    assert [f["name"] for f in kind["fields"]] == [f["name"] for f in envelope_fields(kind["name"])]
    assert rec.is_command != rec.is_event
    assert rec.is_command == (kind["name"] == "aion.CommandEnvelope")
    assert "envelope" not in [f["name"] for f in rec.payload_fields]
    assert len(rec.payload_fields) == len(rec.schema["fields"]) - 1


@pytest.mark.parametrize("path", AVSC, ids=lambda p: p.name)
def test_every_avsc_file_parses_with_fastavro(path: Any) -> None:
    loaded = fastavro.schema.load_schema(str(path), _write_hint=False)
    assert loaded["name"] == path.name.removesuffix(".avsc")


def test_commands_of_aggregates_are_command_records() -> None:
    for aggregate in AGGREGATES.values():
        for command in aggregate.commands:
            assert catalog.record(command).is_command is True, command


def test_known_events_are_event_records() -> None:
    for name in (CREATED, "aion.CommandRejected"):
        rec = catalog.record(name)
        assert (rec.is_event, rec.is_command) == (True, False), name


def test_unknown_record_raises_key_error_with_a_clear_message() -> None:
    with pytest.raises(KeyError) as caught:
        catalog.record("nope")
    message = caught.value.args[0]
    assert message.startswith("no Avro schema named nope in ")
    assert str(catalog.AVRO_DIR) in message


def test_records_round_trip_through_fastavro() -> None:
    """A payload valid per the schema serialises with the parsed, envelope-inlined schema."""
    import io

    envelope = {
        "command_id": "c",
        "command_type": "aion.tenant.CreateTenant",
        "correlation_id": "c",
        "tenant_id": "acme",
        "aggregate_type": "tenant",
        "aggregate_id": "acme",
        "expected_version": None,
        "idempotency_key": None,
        "issued_at": 1_700_000_000_000,
        "actor": "test",
        "traceparent": None,
        "tracestate": None,
    }
    value = {"envelope": envelope, "tenant_id": "acme", "display_name": "A", "labels": {}}
    buf = io.BytesIO()
    parsed = catalog.record("aion.tenant.CreateTenant").parsed
    fastavro.schemaless_writer(buf, parsed, value)
    buf.seek(0)
    back = fastavro.schemaless_reader(buf, parsed)
    assert back["tenant_id"] == "acme"
    assert back["envelope"]["command_id"] == "c"


# --- OpenAPI ---------------------------------------------------------------------------------


def test_document_is_openapi_31_with_every_operation() -> None:
    doc = document(OPERATIONS)
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {op.path for op in OPERATIONS}
    for op in OPERATIONS:
        entry = doc["paths"][op.path][op.method.lower()]
        assert entry["summary"] == op.summary
        guarded = set() if is_public(op.path) else {"401", "403", "429"}
        assert set(entry["responses"]) == set(op.ok) | set(op.errors) | guarded
        assert ("security" in entry) == bool(guarded), op.path
    json.dumps(doc)  # serialisable as /openapi.json


def test_path_parameters_are_declared() -> None:
    doc = document(OPERATIONS)
    params = doc["paths"]["/v1/tenants/{tenant}"]["get"]["parameters"]
    assert [p for p in params if p["in"] == "path"] == [
        {"name": "tenant", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert "parameters" not in doc["paths"]["/healthz"]["get"]


def test_error_responses_reference_the_problem_schema() -> None:
    doc = document(OPERATIONS)
    response = doc["paths"]["/v1/tenants"]["post"]["responses"]["422"]
    schema = response["content"]["application/problem+json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Problem"}
    assert "Problem" in doc["components"]["schemas"]


def test_create_tenant_component_is_derived_from_the_avro_payload() -> None:
    doc = document(OPERATIONS)
    post = doc["paths"]["/v1/tenants"]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/CreateTenant"
    component = doc["components"]["schemas"]["CreateTenant"]
    fields = catalog.record("aion.tenant.CreateTenant").payload_fields
    assert list(component["properties"]) == [f["name"] for f in fields]
    assert component["required"] == [f["name"] for f in fields if "default" not in f]
    assert component["required"] == ["tenant_id", "display_name"]
    assert component["additionalProperties"] is False
    assert component["properties"]["labels"] == {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "default": {},
    }
    tenant_doc = next(f["doc"] for f in fields if f["name"] == "tenant_id")
    assert component["properties"]["tenant_id"]["description"] == tenant_doc


def test_any_command_record_becomes_a_component() -> None:
    """The component follows whichever record the route names: nothing is hand-written."""
    doc = document([Operation("POST", "/x", "x", command="aion.CommandRejected")])
    component = doc["components"]["schemas"]["CommandRejected"]
    fields = catalog.record("aion.CommandRejected").payload_fields
    assert list(component["properties"]) == [f["name"] for f in fields]
    assert component["properties"]["field"]["anyOf"] == [{"type": "null"}, {"type": "string"}]
    assert "field" not in component["required"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("string", {"type": "string"}),
        ("int", {"type": "integer", "format": "int32"}),
        ("long", {"type": "integer", "format": "int64"}),
        ("boolean", {"type": "boolean"}),
        ("double", {"type": "number"}),
        ("bytes", {"type": "string"}),
        (["string"], {"type": "string"}),
        (["null", "long"], {"anyOf": [{"type": "null"}, {"type": "integer", "format": "int64"}]}),
        (
            {"type": "map", "values": "int"},
            {"type": "object", "additionalProperties": {"type": "integer", "format": "int32"}},
        ),
        (
            {"type": "array", "items": ["null", "string"]},
            {"type": "array", "items": {"anyOf": [{"type": "null"}, {"type": "string"}]}},
        ),
        (
            {"type": "enum", "name": "Status", "symbols": ["active", "suspended"]},
            {"type": "string", "enum": ["active", "suspended"]},
        ),
        (
            {"type": "long", "logicalType": "timestamp-millis"},
            {"type": "integer", "format": "int64"},
        ),
    ],
)
def test_avro_to_json_schema(kind: Any, expected: dict[str, Any]) -> None:
    assert avro_to_json_schema(kind) == expected


def test_nested_record_to_json_schema() -> None:
    kind = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": "string", "doc": "the a"},
            {"name": "b", "type": ["null", "int"], "default": None},
        ],
    }
    assert avro_to_json_schema(kind) == record_schema(kind["fields"])
    assert avro_to_json_schema(kind) == {
        "type": "object",
        "properties": {
            "a": {"type": "string", "description": "the a"},
            "b": {
                "anyOf": [{"type": "null"}, {"type": "integer", "format": "int32"}],
                "default": None,
            },
        },
        "required": ["a"],
        "additionalProperties": False,
    }
