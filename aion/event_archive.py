"""`aion events export | import`: events to an Avro file and back into a cluster.

The file is an Avro object container file (deflate) of ``aion.export.ExportedEvent`` records
(``EXPORT_SCHEMA``), one per event, each partition's events in offset order. A record holds the
event's source position (topic, partition, offset), Kafka timestamp, key and headers, the
record's full name, its writer schema as the source registry returned it (JSON text; the source
id too, for reference) and ``payload``: the Avro body, i.e. the message value without its
5-byte Confluent header, because a schema id means nothing to another registry. Each record is
self-contained (the repeated schema text costs little once deflated), and any Avro tool can
read the file. Its metadata say ``aion.export.format`` (``FORMAT_VERSION``), when it was
written, from which topics and with which filter.

Import registers each writer schema under ``<target topic>-<record>`` in the target registry
(in source-id order, so versions arrive in the order they were first registered; an identical
schema already there keeps its id), puts the id it gets in front of the body, and produces the
records in file order with their key, timestamp and headers (plus ``aion-imported-from``:
``<topic>:<partition>:<offset>`` of the source): to the same partition number when the target
topic has enough partitions, else by key (murmur2, as every producer of ours), so per-key order
holds either way. Body and writer schema are the original bytes and text, so a decoder reads the
same values. Kafka has no dedupe: importing a file twice writes every record twice.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.read import SchemaResolutionError

from aion.event_tools import (
    Event,
    EventFilter,
    EventToolError,
    Skipped,
    iso,
    read_events,
    topic_partitions,
)
from schemas.codec import COMPATIBILITY, Codec, RegistryUnavailable, subject
from schemas.topics import producer_config

FORMAT_VERSION = "1"
IMPORTED_FROM = "aion-imported-from"

EXPORT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "ExportedEvent",
    "namespace": "aion.export",
    "doc": "One event as it was on Kafka: position, key, headers, writer schema and Avro body.",
    "fields": [
        {"name": "topic", "type": "string"},
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long"},
        {"name": "timestamp_ms", "type": ["null", "long"], "default": None},
        {"name": "key", "type": ["null", "bytes"], "default": None},
        {
            "name": "headers",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Header",
                    "fields": [
                        {"name": "key", "type": "string"},
                        {"name": "value", "type": ["null", "bytes"], "default": None},
                    ],
                },
            },
            "default": [],
        },
        {
            "name": "record_name",
            "type": "string",
            "doc": "Full name, e.g. aion.task.TaskSubmitted.",
        },
        {"name": "schema_id", "type": "int", "doc": "The writer schema's id in the source."},
        {"name": "schema", "type": "string", "doc": "The writer schema, JSON text."},
        {"name": "payload", "type": "bytes", "doc": "The Avro body, without the 5-byte header."},
    ],
}
PARSED_EXPORT_SCHEMA = fastavro.parse_schema(EXPORT_SCHEMA)


# --- export -----------------------------------------------------------------------------------


def export_record(event: Event, schema_text: str) -> dict[str, Any]:
    return {
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
        "timestamp_ms": event.timestamp_ms,
        "key": event.key,
        "headers": [{"key": k, "value": v} for k, v in event.headers],
        "record_name": event.record_name,
        "schema_id": event.schema_id,
        "schema": schema_text,
        "payload": event.body,
    }


def export_events(
    kafka: str,
    registry: str,
    topics: Sequence[str],
    chosen: EventFilter,
    target: Path,
    skipped: Skipped,
) -> int:
    """Write the matching events to ``target`` (replaced only once complete); returns how many."""
    codec = Codec(registry)
    count = 0

    def records() -> Iterator[dict[str, Any]]:
        nonlocal count
        for event in read_events(kafka, registry, topics, chosen, skipped):
            count += 1
            yield export_record(event, _schema_text(codec, event.schema_id))

    metadata = {
        "aion.export.format": FORMAT_VERSION,
        "aion.export.created_at": iso(datetime.now(UTC)),
        "aion.export.topics": ",".join(topics),
        "aion.export.filter": json.dumps(chosen.as_dict()),
    }
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("wb") as out:
            fastavro.writer(
                out, PARSED_EXPORT_SCHEMA, records(), codec="deflate", metadata=metadata
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return count


def _schema_text(codec: Codec, schema_id: int) -> str:
    """The writer schema's text (the client caches it: decoding already fetched it)."""
    try:
        return codec.client.get_schema(schema_id).schema_str or ""
    except SchemaRegistryError as exc:
        raise EventToolError(f"schema id {schema_id}: {exc}") from exc
    except Exception as exc:
        raise RegistryUnavailable(f"schema registry: {exc}") from exc


def parse_topic_map(items: Iterable[str]) -> dict[str, str]:
    """``OLD=NEW`` pairs; each OLD at most once."""
    mapping: dict[str, str] = {}
    for item in items:
        old, sep, new = (part.strip() for part in item.partition("="))
        if not (sep and old and new):
            raise ValueError(f"invalid topic map {item!r}: write OLD=NEW")
        if old in mapping:
            raise ValueError(f"topic {old!r} is mapped twice")
        mapping[old] = new
    return mapping


# --- import -----------------------------------------------------------------------------------


def read_export(path: Path) -> Iterator[dict[str, Any]]:
    """The records of an export file, oldest first; EventToolError if it is not one."""
    try:
        with path.open("rb") as stream:
            # Our schema as the reader's: a file of another shape fails here, not half-way.
            reader = fastavro.reader(stream, reader_schema=PARSED_EXPORT_SCHEMA)
            version = reader.metadata.get("aion.export.format")
            if version != FORMAT_VERSION:
                raise EventToolError(
                    f"{path} is an Avro file but not an Aion events export "
                    f"(aion.export.format is {version!r}, expected {FORMAT_VERSION!r})"
                )
            for record in reader:
                assert isinstance(record, dict)  # the reader schema is a record
                yield record
    except EventToolError:
        raise
    except (OSError, ValueError, EOFError, SchemaResolutionError) as exc:
        raise EventToolError(f"cannot read {path} as an Aion events export: {exc}") from exc


@dataclass
class ImportPlan:
    """What a file needs from the target: topics (highest partition used) and schemas."""

    partitions: dict[str, int] = field(default_factory=dict)  # target topic -> max partition
    schemas: dict[tuple[str, str, str], int] = field(default_factory=dict)  # -> source id
    sources: set[str] = field(default_factory=set)  # the topics the events came from


def plan_import(path: Path, topic_map: Mapping[str, str]) -> ImportPlan:
    plan = ImportPlan()
    for record in read_export(path):
        target = topic_map.get(record["topic"], record["topic"])
        plan.partitions[target] = max(plan.partitions.get(target, 0), record["partition"])
        plan.schemas.setdefault(
            (target, record["record_name"], record["schema"]), record["schema_id"]
        )
        plan.sources.add(record["topic"])
    return plan


def register_schemas(registry: str, plan: ImportPlan) -> dict[tuple[str, str, str], int]:
    """Register each writer schema under ``<target topic>-<record>``; returns the target ids.
    An exact schema already there gets its existing id."""
    client = Codec(registry).client
    ids: dict[tuple[str, str, str], int] = {}
    for needed, _ in sorted(plan.schemas.items(), key=lambda item: item[1]):
        topic, record_name, text = needed
        name = subject(topic, record_name)
        try:
            ids[needed] = client.register_schema(name, Schema(text, "AVRO"))
            client.set_compatibility(name, COMPATIBILITY)
        except SchemaRegistryError as exc:
            raise EventToolError(f"the registry refused the schema of {name}: {exc}") from exc
        except Exception as exc:
            raise RegistryUnavailable(f"schema registry at {registry}: {exc}") from exc
    return ids


def target_partition(source_partition: int, target_partitions: int) -> int | None:
    """The same partition when the target has it; None: let the key choose."""
    return source_partition if source_partition < target_partitions else None


@dataclass
class ImportReport:
    produced: dict[str, int] = field(default_factory=dict)  # target topic -> records
    schemas: int = 0
    by_key: set[str] = field(default_factory=set)  # topics with fewer partitions than the source
    unused_map: list[str] = field(default_factory=list)  # --topic-map entries the file lacks

    @property
    def total(self) -> int:
        return sum(self.produced.values())


def import_events(
    kafka: str, registry: str, path: Path, topic_map: Mapping[str, str]
) -> ImportReport:
    """Produce an export's records into this cluster's existing topics; see the module doc."""
    plan = plan_import(path, topic_map)
    present = topic_partitions(kafka)
    missing = sorted(t for t in plan.partitions if t not in present)
    if missing:
        raise EventToolError(
            f"the target cluster has no topic {', '.join(missing)}: create Aion's topics with "
            "`aion init` (and any renamed ones yourself) first; nothing was imported"
        )
    ids = register_schemas(registry, plan)
    report = ImportReport(schemas=len(ids), unused_map=sorted(set(topic_map) - plan.sources))
    for topic, highest in plan.partitions.items():
        if highest >= present[topic]:
            report.by_key.add(topic)
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer(
        producer_config(kafka, **{"enable.idempotence": True, "message.timeout.ms": 120_000})
    )
    for record in read_export(path):
        topic = topic_map.get(record["topic"], record["topic"])
        schema_id = ids[(topic, record["record_name"], record["schema"])]
        origin = f"{record['topic']}:{record['partition']}:{record['offset']}"
        extra: dict[str, Any] = {}
        partition = target_partition(record["partition"], present[topic])
        if partition is not None:
            extra["partition"] = partition
        if record["timestamp_ms"] is not None:
            extra["timestamp"] = record["timestamp_ms"]
        _produce(
            producer,
            topic,
            key=record["key"],
            value=b"\x00" + struct.pack(">I", schema_id) + record["payload"],
            headers=[*((h["key"], h["value"]) for h in record["headers"]), (IMPORTED_FROM, origin)],
            on_delivery=delivered,
            **extra,
        )
        report.produced[topic] = report.produced.get(topic, 0) + 1
    if producer.flush(180) != 0 or failures:
        first = failures[0] if failures else "not acknowledged in time"
        raise EventToolError(
            f"Kafka did not take {len(failures) or 'some'} of {report.total} record(s) ({first}); "
            "the others may be written: importing the file again would duplicate them"
        )
    return report


def _produce(producer: Producer, topic: str, **kwargs: Any) -> None:
    while True:
        try:
            producer.produce(topic, **kwargs)
            producer.poll(0)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.5)
