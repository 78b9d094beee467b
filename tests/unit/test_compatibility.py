"""The compatibility gate catches incompatible changes and lets compatible ones through."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from schemas import catalog
from schemas.compatibility import (
    check_released,
    released_versions,
    resolution_problems,
    sample,
    snapshot,
)

CREATED = "aion.tenant.TenantCreated"


def current() -> dict[str, dict[str, Any]]:
    return {name: copy.deepcopy(r.schema) for name, r in catalog.all_records().items()}


def test_the_repository_schemas_pass_the_gate() -> None:
    assert "v1" in released_versions()
    assert check_released() == []


def test_a_new_required_field_without_default_is_caught() -> None:
    schemas = current()
    schemas[CREATED]["fields"].append({"name": "plan", "type": "string"})
    found = check_released(schemas)
    assert [f.record for f in found] == [CREATED]
    assert "plan" in found[0].problem


def test_a_changed_field_type_is_caught() -> None:
    schemas = current()
    for field in schemas[CREATED]["fields"]:
        if field["name"] == "display_name":
            field["type"] = "long"
    assert [f.record for f in check_released(schemas)] == [CREATED]


def test_a_removed_record_is_caught() -> None:
    schemas = current()
    del schemas[CREATED]
    found = check_released(schemas)
    assert [(f.record, f.problem) for f in found] == [(CREATED, "record was removed")]


def test_a_new_field_with_a_default_is_compatible() -> None:
    schemas = current()
    schemas[CREATED]["fields"].append({"name": "plan", "type": "string", "default": "free"})
    assert check_released(schemas) == []


def test_a_removed_enum_symbol_is_caught() -> None:
    writer = {"type": "enum", "name": "E", "symbols": ["a", "b", "c"]}
    reader = {"type": "enum", "name": "E", "symbols": ["a", "b"]}
    assert resolution_problems(writer, reader)
    assert resolution_problems(reader, writer) == []


def test_samples_cover_every_union_branch() -> None:
    kind = {"type": "record", "name": "R", "fields": [{"name": "x", "type": ["null", "string"]}]}
    assert {sample(kind, v)["x"] for v in range(2)} == {None, "text-1"}


def test_snapshot_writes_expanded_schemas_and_never_overwrites(tmp_path: Path) -> None:
    folder = snapshot("v9", root=tmp_path)
    written = json.loads((folder / f"{CREATED}.avsc").read_text())
    assert written == catalog.record(CREATED).schema
    with pytest.raises(FileExistsError, match="v9 exists already"):
        snapshot("v9", root=tmp_path)
    assert check_released(root=tmp_path) == []


def test_a_registry_that_does_not_answer_is_transient_not_poison() -> None:
    """A refused connection must be retried; an answer that says "unknown id" is poison."""
    import httpx
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    from schemas.codec import Codec, DecodeError, RegistryUnavailable, _registry_down

    assert _registry_down(httpx.ConnectError("refused"))
    assert _registry_down(ConnectionRefusedError())
    assert not _registry_down(SchemaRegistryError(404, 40403, "schema not found"))
    assert not _registry_down(ValueError("bad bytes"))
    codec = Codec("http://127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(RegistryUnavailable):
        codec.decode("aion.commands", b"\x00\x00\x00\x00\x07payload")
    with pytest.raises(DecodeError, match="magic byte"):
        codec.decode("aion.commands", b"not avro")
