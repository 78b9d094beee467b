"""A stranger's consumer, written from confluent-kafka's documentation with its defaults: the
registry URL and nothing else (no subject strategy, no timeout). Run as a child process by
tests/stack/test_stock_consumer.py, so that a hang is a process to kill, not a stuck test.

    python -m tests.stack.stock_consumer consume <bootstrap> <registry> <topic,topic,...>
        reads the topics from the start in a new group until every partition's end; prints
        "read <n>".
    python -m tests.stack.stock_consumer lookups <bootstrap> <registry> <topic> <threads> <n>
        decodes one record of <topic> with <n> fresh default deserializers on each of
        <threads> threads (each one asks the registry for the topic's associations first, the
        request that hung); prints "decoded <count> slowest <seconds>".
"""

from __future__ import annotations

import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, DeserializingConsumer, KafkaError
from confluent_kafka.error import ConsumeError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def consume(bootstrap: str, registry: str, topics: list[str]) -> None:
    consumer = DeserializingConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"aion-stock-consumer-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "value.deserializer": AvroDeserializer(SchemaRegistryClient({"url": registry})),
        }
    )
    consumer.subscribe(topics)
    read, ended = 0, set()
    try:
        while True:
            try:
                message = consumer.poll(1.0)
            except ConsumeError as error:
                found = error.kafka_message
                if error.code != KafkaError._PARTITION_EOF or found is None:
                    raise
                ended.add((found.topic(), found.partition()))
                assigned = {(p.topic, p.partition) for p in consumer.assignment()}
                if assigned and assigned <= ended:
                    break
                continue
            if message is not None and message.value() is not None:
                read += 1
    finally:
        consumer.close()
    print(f"read {read}", flush=True)


def first_value(bootstrap: str, topic: str) -> bytes:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"aion-stock-consumer-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            value = message.value() if message is not None and not message.error() else None
            if value:
                return bytes(value)
    finally:
        consumer.close()
    raise SystemExit(f"no record on {topic}")


def lookups(bootstrap: str, registry: str, topic: str, threads: int, count: int) -> None:
    value = first_value(bootstrap, topic)
    context = SerializationContext(topic, MessageField.VALUE)
    decoded: list[float] = []

    def work() -> None:
        client = SchemaRegistryClient({"url": registry})  # one kept-alive connection per thread
        for _ in range(count):
            started = time.monotonic()
            AvroDeserializer(client)(value, context)  # fresh: its subject cache is empty
            decoded.append(time.monotonic() - started)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(f"decoded {len(decoded)} slowest {max(decoded):.2f}", flush=True)


if __name__ == "__main__":
    mode, bootstrap, registry, *rest = sys.argv[1:]
    if mode == "consume":
        consume(bootstrap, registry, rest[0].split(","))
    else:
        lookups(bootstrap, registry, rest[0], int(rest[1]), int(rest[2]))
