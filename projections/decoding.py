"""Avro decoding for the projections: fastavro straight from parsed schemas, per schema id.

The codec's deserializer (confluent-kafka's) looks its subject, schemas and rules up again for
every message, which cost a projection rebuild as much time as its writes once they were
batched. Ours has no rules and no schema references, so a message is the writer's schema
resolved against our reader schema (the same pair the codec uses), then upcast: the same value,
for a fraction of the work. Registry lookups, their errors and their retries stay the codec's.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro

from schemas import catalog
from schemas.codec import Codec, DecodeError
from schemas.upcasting import upcast


def _bare(schema: Any, namespace: str = "") -> Any:
    """A schema without its docs, every named type's name in full: what decoding depends on."""
    if isinstance(schema, list):
        return [_bare(s, namespace) for s in schema]
    if not isinstance(schema, dict):
        return schema
    found = {k: _bare(v, namespace) for k, v in schema.items() if k not in ("doc", "namespace")}
    name = schema.get("name")
    if schema.get("type") in ("record", "enum", "fixed") and isinstance(name, str):
        space = schema.get("namespace", namespace)
        full = name if "." in name or not space else f"{space}.{name}"
        inner = full.rpartition(".")[0]
        found = {k: _bare(v, inner) for k, v in schema.items() if k not in ("doc", "namespace")}
        found["name"] = full
    return found


def _same(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    """Whether reading with the writer's schema alone gives what resolving against ours would."""
    return _bare(reader) == _bare(writer)


class Decoder:
    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        # schema id -> (record full name, writer schema JSON, parsed writer, parsed reader)
        self._schemas: dict[int, tuple[str, dict[str, Any], Any, Any | None]] = {}

    def _schema(self, data: bytes) -> tuple[str, dict[str, Any], Any, Any | None]:
        (schema_id,) = struct.unpack(">I", data[1:5])
        found = self._schemas.get(schema_id)
        if found is None:
            writer = self.codec.writer_schema(data)  # DecodeError, RegistryUnavailable
            name = str(writer.get("name", ""))
            try:
                parsed_writer = fastavro.parse_schema(writer)
                ours = (
                    json.loads(catalog.record(name).text) if name in catalog.all_records() else None
                )
                # Resolution only when the writer's schema is not our own: it costs a third.
                if ours is None or _same(ours, writer):
                    reader = None
                else:
                    reader = fastavro.parse_schema(ours)
            except Exception as exc:
                raise DecodeError(f"schema {schema_id} ({name}) cannot be parsed: {exc}") from exc
            found = (name, writer, parsed_writer, reader)
            self._schemas[schema_id] = found
        return found

    def decode(self, topic: str, data: bytes) -> tuple[str, dict[str, Any]]:
        """(record full name, value), as ``Codec.decode`` returns it."""
        if len(data) < 6 or data[0] != 0:
            raise DecodeError("not in the Confluent wire format (no magic byte 0)")
        name, writer, parsed_writer, reader = self._schema(data)
        try:
            value = fastavro.schemaless_reader(io.BytesIO(data[5:]), parsed_writer, reader)
        except Exception as exc:
            raise DecodeError(f"cannot decode {name} from {topic}: {exc}") from exc
        if not isinstance(value, dict):
            raise DecodeError(f"{name} on {topic} is not a record")
        return name, upcast(name, writer, value)
