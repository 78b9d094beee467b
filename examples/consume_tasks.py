"""Follow Aion's tasks from outside: a plain confluent-kafka consumer of `aion.events.task`.

It needs nothing of Aion's code, only the Kafka bootstrap servers and the schema registry's
URL: every message is Avro in the Confluent wire format, and its schema id names the writer
schema in the registry. Each line is one change of one task: when, which task, its version,
the event, and what the event says when it says why (a run's failure, a rejection).

    python examples/consume_tasks.py --bootstrap 127.0.0.1:19092 \
        --registry http://127.0.0.1:18081/apis/ccompat/v7
"""

from __future__ import annotations

import argparse

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

TOPIC = "aion.events.task"

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--bootstrap", default="127.0.0.1:19092")
parser.add_argument("--registry", default="http://127.0.0.1:18081/apis/ccompat/v7")
parser.add_argument("--group", default="aion-example-consume-tasks")
args = parser.parse_args()

registry = SchemaRegistryClient({"url": args.registry, "timeout": 10})
# The topic carries several record types, each under the subject <topic>-<record name>. Naming
# that strategy also keeps confluent-kafka 2.16's deserializer from asking the registry for the
# topic's "associations" first: a Confluent-only API that Apicurio leaves hanging.
decode = AvroDeserializer(
    registry, conf={"subject.name.strategy": topic_record_subject_name_strategy}
)
consumer = Consumer(
    {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",  # a new group starts with the whole history
    }
)
consumer.subscribe([TOPIC])
try:
    while True:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            print(f"# {message.error()}", flush=True)
            continue
        event = decode(message.value(), SerializationContext(TOPIC, MessageField.VALUE))
        envelope = event["envelope"]
        why = event.get("reason") or event.get("code") or ""
        print(
            f"{envelope['occurred_at']:%Y-%m-%d %H:%M:%S} {envelope['aggregate_id']} "
            f"v{envelope['aggregate_version']} {envelope['event_type'].rsplit('.', 1)[1]} {why}",
            flush=True,
        )
except KeyboardInterrupt:
    pass
finally:
    consumer.close()  # commits the offsets and leaves the group at once
