"""Topics as declared, and Avro in the Confluent wire format that any consumer can read."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    topic_record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from aion.bootstrap import ensure_topics
from aion.settings import Settings
from aion.stack.manager import Stack
from schemas import catalog
from schemas.codec import Codec, DecodeError, subject
from schemas.topics import TOPICS, create_missing_topics, events_topic
from streams.app import StreamsApp


@pytest.fixture(scope="module")
def ready(stack: Stack, settings: Settings) -> Settings:
    from aion.bootstrap import bootstrap

    bootstrap(settings)
    return settings


def test_topics_exist_with_declared_partitions_and_retention(ready: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": ready.kafka})
    metadata = admin.list_topics(timeout=10)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t.name) for t in TOPICS]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()}
    for spec in TOPICS:
        assert len(metadata.topics[spec.name].partitions) == ready.topic_partitions
        assert configs[spec.name]["retention.ms"].value == str(spec.retention_ms)
        assert configs[spec.name]["cleanup.policy"].value == spec.cleanup_policy


def test_ensure_topics_twice_creates_nothing(ready: Settings) -> None:
    assert ensure_topics(ready) == []


def test_the_workers_changelogs_are_made_before_faust_starts(ready: Settings) -> None:
    """On a fresh cluster Faust's own declaration raced its consumer's metadata, and the first
    write to a table crashed the command processor (PartitionsMismatch: 0 partitions)."""
    streams = StreamsApp(ready)
    names = [t.changelog_topic.get_topic_name() for t in (streams.aggregates, streams.schedulers)]
    streams.declare_changelogs()
    assert streams.declare_changelogs() == []  # the second time: nothing to make
    admin = AdminClient({"bootstrap.servers": ready.kafka})
    metadata = admin.list_topics(timeout=10)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()}
    for name in names:
        assert len(metadata.topics[name].partitions) == ready.topic_partitions
        assert configs[name]["cleanup.policy"].value == "compact"


def test_missing_topics_are_made_once(ready: Settings) -> None:
    name = f"aion.test-made.{uuid.uuid4().hex[:8]}"
    topic = NewTopic(name, num_partitions=3, replication_factor=1)
    assert create_missing_topics(ready.kafka, [topic]) == [name]
    assert create_missing_topics(ready.kafka, [topic]) == []
    metadata = AdminClient({"bootstrap.servers": ready.kafka}).list_topics(timeout=10)
    assert len(metadata.topics[name].partitions) == 3


def test_the_broker_does_not_auto_create_topics(ready: Settings) -> None:
    producer = Producer({"bootstrap.servers": ready.kafka, "message.timeout.ms": 3000})
    errors = []
    producer.produce(
        f"aion.not-declared.{uuid.uuid4().hex[:8]}",
        b"x",
        on_delivery=lambda err, msg: errors.append(err),
    )
    producer.flush(10)
    assert errors and errors[0] is not None


def _created(tenant: str) -> dict[str, object]:
    return {
        "envelope": {
            "event_id": str(uuid.uuid4()),
            "event_type": "aion.tenant.TenantCreated",
            "command_id": "c1",
            "correlation_id": "c1",
            "causation_id": "c1",
            "tenant_id": tenant,
            "aggregate_type": "tenant",
            "aggregate_id": tenant,
            "aggregate_version": 1,
            "occurred_at": 1_700_000_000_000,
            "actor": "test",
        },
        "tenant_id": tenant,
        "display_name": "T",
        "labels": {"k": "v"},
    }


def test_codec_round_trip_in_the_confluent_wire_format(ready: Settings) -> None:
    codec = Codec(ready.registry)
    topic = events_topic("tenant")
    data = codec.encode(topic, "aion.tenant.TenantCreated", _created("acme"))
    assert data[0] == 0  # magic byte, then a 4-byte schema id
    name, value = codec.decode(topic, data)
    assert name == "aion.tenant.TenantCreated"
    assert value["labels"] == {"k": "v"} and value["envelope"]["aggregate_version"] == 1


def test_a_consumer_with_only_the_registry_url_decodes_our_events(ready: Settings) -> None:
    codec = Codec(ready.registry)
    data = codec.encode(events_topic("tenant"), "aion.tenant.TenantCreated", _created("beta"))
    # A stranger's consumer: the registry URL, plus what docs/topics.md tells every consumer
    # (our subject naming, and a timeout: confluent-kafka 2.16's default reader strategy asks
    # Apicurio for topic "associations", a request that hung twice in runs here).
    client = SchemaRegistryClient({"url": ready.registry, "timeout": 10})
    plain = AvroDeserializer(
        client, conf={"subject.name.strategy": topic_record_subject_name_strategy}
    )
    value = plain(data, SerializationContext(events_topic("tenant"), MessageField.VALUE))
    assert value["tenant_id"] == "beta"


def test_bytes_not_in_the_wire_format_are_a_decode_error(ready: Settings) -> None:
    with pytest.raises(DecodeError, match="magic byte"):
        Codec(ready.registry).decode("aion.commands", b'{"json": true}')


def test_the_registry_refuses_an_incompatible_change(ready: Settings) -> None:
    """Adding a required field without a default breaks BACKWARD_TRANSITIVE."""
    client = SchemaRegistryClient({"url": ready.registry})
    schema = json.loads(catalog.record("aion.tenant.TenantCreated").text)
    schema["fields"].append({"name": "plan", "type": "string"})
    subj = subject(events_topic("tenant"), "aion.tenant.TenantCreated")
    assert client.test_compatibility(subj, Schema(json.dumps(schema), "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subj, Schema(json.dumps(schema), "AVRO"))
    assert refused.value.http_status_code == 409


def _aion(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aion", *args], capture_output=True, text=True, timeout=120
    )


def test_schemas_check_passes_against_released_versions_and_the_registry(ready: Settings) -> None:
    result = _aion("schemas", "check")
    assert result.returncode == 0, result.stderr
    assert "registry compatibility endpoint" in result.stderr
    assert "all schemas are compatible" in result.stderr


def test_schemas_check_fails_on_an_incompatible_released_version(
    ready: Settings, tmp_path: Path
) -> None:
    """A released version with a field the current schema lacks and cannot default."""
    folder = tmp_path / "v0"
    folder.mkdir()
    old = json.loads(catalog.record("aion.tenant.TenantCreated").text)
    for field in old["fields"]:
        if field["name"] == "display_name":
            field["type"] = "long"  # the current schema says string: unreadable
    (folder / "aion.tenant.TenantCreated.avsc").write_text(json.dumps(old))
    result = _aion("schemas", "check", "--no-registry", "--released", str(tmp_path))
    assert result.returncode == 1
    assert "incompatible: aion.tenant.TenantCreated vs released v0" in result.stderr


def test_a_v1_tenant_created_event_is_upcast_when_read(ready: Settings) -> None:
    """Written with the released v1 schema through the registry, read as v2, upcast."""
    from confluent_kafka.schema_registry.avro import AvroSerializer

    from schemas.compatibility import RELEASED_DIR
    from schemas.upcasting import UNLIMITED

    v1_text = (RELEASED_DIR / "v1" / "aion.tenant.TenantCreated.avsc").read_text()
    client = SchemaRegistryClient({"url": ready.registry})
    topic = events_topic("tenant")
    client.register_schema(
        subject(topic, "aion.tenant.TenantCreated"), Schema(json.dumps(json.loads(v1_text)), "AVRO")
    )
    serializer = AvroSerializer(
        client,
        json.dumps(json.loads(v1_text)),
        conf={
            "auto.register.schemas": False,
            "subject.name.strategy": topic_record_subject_name_strategy,
        },
    )
    old = _created("legacy")
    data = serializer(old, SerializationContext(topic, MessageField.VALUE))
    assert data is not None
    name, value = Codec(ready.registry).decode(topic, data)
    assert name == "aion.tenant.TenantCreated"
    assert value["limits"] == UNLIMITED
