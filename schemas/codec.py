"""Avro in the Confluent wire format (magic byte, schema id, body) through the schema registry.

Subjects follow the TopicRecordNameStrategy (``<topic>-<record full name>``), so one topic can
carry several record types and each evolves under its own compatibility check. Decoding looks
the writer's schema up by the id in the message, so any consumer with the registry URL can read
our topics; our own consumers also resolve it against the current reader schema.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    topic_record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas import catalog
from schemas.topics import TOPICS
from schemas.upcasting import upcast

COMPATIBILITY = "BACKWARD_TRANSITIVE"
REGISTRY_TIMEOUT = 10  # seconds
# Our subject names, for reading too: without it confluent-kafka 2.16's deserializer asks the
# registry for topic "associations" (a Confluent-only API) on every new reader, and Apicurio
# left that request hanging here.
SUBJECTS = {"subject.name.strategy": topic_record_subject_name_strategy}


class DecodeError(ValueError):
    """A message that is not Avro in the Confluent wire format, or names an unknown schema:
    a poison message, to be dead-lettered."""


class RegistryUnavailable(ConnectionError):
    """The registry did not answer: transient, so the message must be retried, never
    dead-lettered."""


def _registry_down(exc: BaseException) -> bool:
    """True for transport failures (no answer), False for an answer that says no."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    if isinstance(exc, SchemaRegistryError):
        return False
    transport = type(exc).__module__.startswith(("httpx", "httpcore"))
    return transport or isinstance(exc, OSError | ConnectionError | TimeoutError)


def subject(topic: str, record_name: str) -> str:
    return f"{topic}-{record_name}"


class Codec:
    def __init__(self, registry_url: str) -> None:
        # A bounded wait: these calls are synchronous, and the stream processor's event loop
        # must never hang on a registry that stopped answering mid-request.
        self.client = SchemaRegistryClient({"url": registry_url, "timeout": REGISTRY_TIMEOUT})
        self._headers: dict[tuple[str, str], bytes] = {}  # (topic, record) -> magic + id
        self._readers: dict[str, AvroDeserializer] = {}
        self._writers: dict[int, dict[str, Any]] = {}
        # schema id -> (parsed writer, parsed reader or None), or None: take the slow path
        self._resolvers: dict[int, tuple[Any, Any] | None] = {}

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
        """The Confluent wire format of ``value``: magic byte, the schema id registered for
        ``<topic>-<record>`` (looked up once), then fastavro's binary encoding.

        Written here rather than through confluent-kafka's AvroSerializer, which validated and
        resolved rules on every call for a third of the API's encoding time; the bytes are the
        same (a test decodes them with confluent-kafka's deserializer)."""
        key = (topic, record_name)
        header = self._headers.get(key)
        if header is None:
            try:
                registered = self.client.lookup_schema(
                    subject(topic, record_name), Schema(catalog.record(record_name).text, "AVRO")
                )
            except Exception as exc:
                if _registry_down(exc):
                    raise RegistryUnavailable(f"schema registry: {exc}") from exc
                raise
            if registered.schema_id is None:
                raise RegistryUnavailable(f"the registry gave no id for {subject(*key)}")
            header = b"\x00" + struct.pack(">I", registered.schema_id)
            self._headers[key] = header
        body = io.BytesIO()
        body.write(header)
        fastavro.schemaless_writer(body, catalog.record(record_name).parsed, value)
        return body.getvalue()

    def writer_schema(self, data: bytes) -> dict[str, Any]:
        """The schema a message was written with (JSON form), from the id in its header."""
        if len(data) < 5 or data[0] != 0:
            raise DecodeError("not in the Confluent wire format (no magic byte 0)")
        (schema_id,) = struct.unpack(">I", data[1:5])
        writer = self._writers.get(schema_id)
        if writer is None:
            try:
                text = self.client.get_schema(schema_id).schema_str
            except Exception as exc:
                if _registry_down(exc):
                    raise RegistryUnavailable(f"schema registry: {exc}") from exc
                raise DecodeError(f"schema id {schema_id} is unknown to the registry") from exc
            writer = json.loads(text or "{}")
            name = writer.get("name", "")
            if "." not in name and writer.get("namespace"):
                writer["name"] = f"{writer['namespace']}.{name}"
            self._writers[schema_id] = writer
        return writer

    def writer_name(self, data: bytes) -> str:
        """The full record name of the schema a message was written with."""
        return str(self.writer_schema(data).get("name", ""))

    def decode(self, topic: str, data: bytes) -> tuple[str, dict[str, Any]]:
        """(record full name, value), resolved against our reader schema when we know it.

        fastavro reads the body straight away with the writer's and our reader's schema,
        parsed once per schema id: confluent-kafka's deserializer costs ~33 us a message here
        against ~12 us, and every task's events are decoded by several consumers. A writer
        schema fastavro cannot parse on its own (one with references) goes through the
        deserializer, which fetches what it refers to."""
        writer = self.writer_schema(data)
        name = str(writer.get("name", ""))
        resolver = self._resolver(data, writer, name)
        if resolver is not None:
            try:
                value = fastavro.schemaless_reader(io.BytesIO(data[5:]), *resolver)
            except Exception as exc:
                raise DecodeError(f"cannot decode {name} from {topic}: {exc}") from exc
        else:
            value = self._deserialize(topic, data, name)
        if not isinstance(value, dict):
            raise DecodeError(f"{name} on {topic} is not a record")
        return name, upcast(name, writer, value)

    def _resolver(self, data: bytes, writer: dict[str, Any], name: str) -> tuple[Any, Any] | None:
        (schema_id,) = struct.unpack(">I", data[1:5])
        if schema_id not in self._resolvers:
            try:
                parsed = fastavro.parse_schema(writer, named_schemas={})
            except Exception:  # e.g. a reference to a schema the text does not hold
                self._resolvers[schema_id] = None
            else:
                known = name in catalog.all_records()
                reader = catalog.record(name).parsed if known else None
                self._resolvers[schema_id] = (parsed, reader)
        return self._resolvers[schema_id]

    def _deserialize(self, topic: str, data: bytes, name: str) -> Any:
        reader = self._readers.get(name)
        if reader is None:
            known = name in catalog.all_records()
            reader = AvroDeserializer(
                self.client, catalog.record(name).text if known else None, conf=SUBJECTS
            )
            self._readers[name] = reader
        try:
            return reader(data, SerializationContext(topic, MessageField.VALUE))
        except Exception as exc:
            if _registry_down(exc):
                raise RegistryUnavailable(f"schema registry: {exc}") from exc
            raise DecodeError(f"cannot decode {name} from {topic}: {exc}") from exc
