"""The Avro schemas of every command and event, loaded from ``schemas/avro``.

Each ``<namespace>.<Name>.avsc`` file holds one record; shared records (the envelopes) are
referenced by name and inlined on load, so every registered schema is self-contained and a
consumer needs nothing but the registry to read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import load_schema

AVRO_DIR = Path(__file__).parent / "avro"
ENVELOPES = ("aion.EventEnvelope", "aion.CommandEnvelope")


@dataclass(frozen=True)
class RecordSchema:
    name: str  # full name, e.g. aion.tenant.TenantCreated
    schema: dict[str, Any]  # expanded JSON form, envelopes inlined

    @property
    def text(self) -> str:
        return json.dumps(self.schema, sort_keys=True, separators=(",", ":"))

    @property
    def is_command(self) -> bool:
        return self._envelope_type() == "aion.CommandEnvelope"

    @property
    def is_event(self) -> bool:
        return self._envelope_type() == "aion.EventEnvelope"

    def _envelope_type(self) -> str | None:
        for field in self.schema["fields"]:
            if field["name"] == "envelope":
                kind = field["type"]
                return kind if isinstance(kind, str) else str(kind["name"])
        return None

    @property
    def payload_fields(self) -> list[dict[str, Any]]:
        """The fields a caller supplies: everything but the envelope."""
        return [f for f in self.schema["fields"] if f["name"] != "envelope"]

    @property
    def parsed(self) -> Any:
        return _parsed(self.name)


def _load(path: Path) -> dict[str, Any]:
    loaded = load_schema(str(path), _write_hint=False)
    # load_schema returns parsed (namespaced) form; round-trip through JSON for a plain dict.
    return json.loads(json.dumps(loaded))


def is_message_file(path: Path) -> bool:
    """A command or event (it has an envelope), not a shared type such as a manifest."""
    raw = json.loads(path.read_text())
    return any(f.get("name") == "envelope" for f in raw.get("fields", []))


@cache
def all_records() -> dict[str, RecordSchema]:
    """Every command and event record; shared types are inlined into them, not listed."""
    records = {}
    for path in sorted(AVRO_DIR.glob("*.avsc")):
        name = path.name.removesuffix(".avsc")
        if name in ENVELOPES or not is_message_file(path):
            continue
        records[name] = RecordSchema(name, _load(path))
    return records


def record(name: str) -> RecordSchema:
    try:
        return all_records()[name]
    except KeyError as exc:
        raise KeyError(f"no Avro schema named {name} in {AVRO_DIR}") from exc


@cache
def _parsed(name: str) -> Any:
    return fastavro.parse_schema(record(name).schema)
