"""Avro in the Confluent wire format (magic byte, schema id, body) through the schema registry.

Subjects follow the TopicRecordNameStrategy (``<topic>-<record full name>``), so one topic can
carry several record types and each evolves under its own compatibility check. Decoding looks
the writer's schema up by the id in the message, so any consumer with the registry URL can read
our topics; our own consumers also resolve it against the current reader schema.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    topic_record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas import catalog
from schemas.topics import TOPICS

COMPATIBILITY = "BACKWARD_TRANSITIVE"


class DecodeError(ValueError):
    """A message that is not Avro in the Confluent wire format, or names an unknown schema."""


def subject(topic: str, record_name: str) -> str:
    return f"{topic}-{record_name}"


class Codec:
    def __init__(self, registry_url: str) -> None:
        self.client = SchemaRegistryClient({"url": registry_url})
        self._serializers: dict[str, AvroSerializer] = {}
        self._readers: dict[str, AvroDeserializer] = {}
        self._writer_names: dict[int, str] = {}

    def register_all(self) -> dict[str, int]:
        """Register every record under every topic that carries it; returns subject -> id.

        Each subject gets BACKWARD_TRANSITIVE compatibility, so an incompatible change is refused
        by the registry itself even when it is shared with other teams.
        """
        ids = {}
        for spec in TOPICS:
            for name in spec.records:
                subj = subject(spec.name, name)
                ids[subj] = self.client.register_schema(
                    subj, Schema(catalog.record(name).text, "AVRO")
                )
                self.client.set_compatibility(subj, COMPATIBILITY)
        return ids

    def encode(self, topic: str, record_name: str, value: dict[str, Any]) -> bytes:
        serializer = self._serializers.get(record_name)
        if serializer is None:
            serializer = AvroSerializer(
                self.client,
                catalog.record(record_name).text,
                conf={
                    "auto.register.schemas": False,
                    "subject.name.strategy": topic_record_subject_name_strategy,
                },
            )
            self._serializers[record_name] = serializer
        data = serializer(value, SerializationContext(topic, MessageField.VALUE))
        assert data is not None
        return data

    def writer_name(self, data: bytes) -> str:
        """The full record name of the schema a message was written with."""
        if len(data) < 5 or data[0] != 0:
            raise DecodeError("not in the Confluent wire format (no magic byte 0)")
        (schema_id,) = struct.unpack(">I", data[1:5])
        name = self._writer_names.get(schema_id)
        if name is None:
            try:
                text = self.client.get_schema(schema_id).schema_str
            except Exception as exc:
                raise DecodeError(f"schema id {schema_id} is unknown to the registry") from exc
            parsed = json.loads(text or "{}")
            name = parsed.get("name", "")
            if "." not in name and parsed.get("namespace"):
                name = f"{parsed['namespace']}.{name}"
            self._writer_names[schema_id] = name
        return name

    def decode(self, topic: str, data: bytes) -> tuple[str, dict[str, Any]]:
        """(record full name, value), resolved against our reader schema when we know it."""
        name = self.writer_name(data)
        reader = self._readers.get(name)
        if reader is None:
            known = name in catalog.all_records()
            reader = AvroDeserializer(self.client, catalog.record(name).text if known else None)
            self._readers[name] = reader
        try:
            value = reader(data, SerializationContext(topic, MessageField.VALUE))
        except Exception as exc:
            raise DecodeError(f"cannot decode {name} from {topic}: {exc}") from exc
        return name, value  # type: ignore[return-value]
