"""Rebuild the worker's lost changelogs from the events topics (`aion replay write-model`).

Reads every aggregate's events topic as it stands, folds it (``streams.rebuild_state``), and
either compares the result with the changelogs (``verify``) or writes it into them (``write``).
Each document goes to the changelog partition that the command processor itself would have
written: the partition of its message key (the tenant on the tenant stage, the task on the task
stage, hashed by ``murmur2_random`` like every producer of ours); a replicated fact goes to
every partition of the task stage's table.

Writing refuses while a worker is in the group (it would keep writing its own state), and
while the changelogs still hold anything unless asked to replace them (a partial changelog
beside a rebuilt one would mix two states).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import murmur2
from confluent_kafka import ConsumerGroupState, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from aion.settings import Settings
from commands.aggregates import AGGREGATES
from schemas.codec import Codec, DecodeError
from schemas.topics import COMMANDS, create_missing_topics, events_topic, producer_config
from streams.rebuild_state import Folded, Rebuilt, documents, fold
from streams.topic_snapshot import partition_ranges, read_snapshot, tool_consumer

GROUP = "aion-streams"  # the worker's Faust app id: its consumer group
CHANGELOGS = {
    "aggregates": f"{GROUP}-aggregates-changelog",
    "schedulers": f"{GROUP}-schedulers-changelog",
    "tasks": f"{GROUP}-tasks-changelog",
}


class RebuildRefused(Exception):
    """The write model cannot be rebuilt now; the message says what to do."""


@dataclass
class Difference:
    key: str
    rebuilt: Any
    stored: Any


@dataclass
class Report:
    events: int = 0
    undecodable: int = 0
    duplicates: int = 0
    gaps: list[str] = field(default_factory=list)
    documents: int = 0
    tenants: int = 0
    differences: list[Difference] = field(default_factory=list)
    removed_stores: list[str] = field(default_factory=list)


def partition_of(key: str, partitions: int) -> int:
    """The partition of a message key (a tenant on aion.commands, a task on aion.tasks)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def event_records(
    settings: Settings, report: Report, aggregates: Iterable[str] = tuple(AGGREGATES)
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record of the aggregates' events topics, decoded (the undecodable counted)."""
    codec = Codec(settings.registry)
    for name in aggregates:
        topic = events_topic(name)
        for message in read_snapshot(settings.kafka, topic, "rebuild-write-model"):
            try:
                yield codec.decode(topic, message.value() or b"")
            except DecodeError:
                report.undecodable += 1


def rebuild(settings: Settings, report: Report) -> Rebuilt:
    folded: Folded = fold(event_records(settings, report))
    report.events, report.duplicates, report.gaps = folded.read, folded.duplicates, folded.gaps
    rebuilt = documents(folded, int(time.time() * 1000), settings.watchdog_grace_ms)
    report.documents = len(rebuilt.aggregates) + len(rebuilt.schedulers) + len(rebuilt.tasks)
    report.tenants = len(rebuilt.schedulers)
    return rebuilt


def stored_documents(settings: Settings, table: str) -> dict[str, Any]:
    """The latest document of each key in a table's changelog (deleted keys left out)."""
    latest: dict[str, Any] = {}
    for message in read_snapshot(settings.kafka, CHANGELOGS[table], "rebuild-write-model"):
        key = str(orjson.loads(message.key() or b'""'))
        value = message.value()
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = orjson.loads(value)
    return latest


def verify(settings: Settings) -> Report:
    """Rebuild in memory and compare every aggregate's state with the changelogs' (the
    scheduler entries are compared by their counters: a rebuilt queue is the same tasks in a
    fresh numbering)."""
    report = Report()
    rebuilt = rebuild(settings, report)
    stored = {**stored_documents(settings, "aggregates"), **stored_documents(settings, "tasks")}
    for key, (_, document) in [*rebuilt.aggregates.items(), *rebuilt.tasks.items()]:
        if key.split(":", 1)[0] in AGGREGATES:
            found = (stored.get(key) or {}).get("state")
            if found != document["state"]:
                report.differences.append(Difference(key, document["state"], found))
    schedulers = stored_documents(settings, "schedulers")
    for key, (_, document) in rebuilt.schedulers.items():
        mine, theirs = document["state"], (schedulers.get(key) or {}).get("state") or {}
        for counter in ("queued", "active", "retrying"):
            if mine[counter] != theirs.get(counter, 0):
                report.differences.append(Difference(f"{key}/{counter}", mine, theirs))
    return report


def write(settings: Settings, replace: bool) -> Report:
    """Rebuild the changelogs: refuse while a worker runs, replace them if asked, write every
    document, and remove this machine's worker stores (they hold the state that was lost)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka})
    members = group_members(admin)
    if members:
        raise RebuildRefused(
            f"{members} worker(s) are in the consumer group {GROUP}: stop every `aion worker` "
            "first (a running worker keeps writing its own state)"
        )
    holding = [topic for topic in CHANGELOGS.values() if holds_records(settings, topic)]
    if holding and not replace:
        raise RebuildRefused(
            f"{', '.join(holding)} still hold state: pass --replace to delete them and write the "
            "rebuilt state instead (or `--verify-only` to compare without writing)"
        )
    report = Report()
    rebuilt = rebuild(settings, report)
    if holding:
        delete_topics(admin, holding)
    partitions = command_partitions(admin)
    create_missing_topics(settings.kafka, changelog_topics(settings, partitions))
    produce(settings, CHANGELOGS["aggregates"], rebuilt.aggregates, partitions)
    produce(settings, CHANGELOGS["schedulers"], rebuilt.schedulers, partitions)
    copies = {
        (key, partition): (partition, document)
        for key, document in rebuilt.facts.items()
        for partition in range(partitions)
    }
    produce(settings, CHANGELOGS["tasks"], {**rebuilt.tasks, **copies}, partitions)
    report.removed_stores = remove_worker_stores(settings.stack_dir / "faust")
    return report


def command_partitions(admin: AdminClient) -> int:
    """The partitions of ``aion.commands``: the changelogs' too, one per command partition."""
    found = admin.list_topics(COMMANDS, timeout=10).topics.get(COMMANDS)
    if found is None or found.error is not None or not found.partitions:
        raise RebuildRefused(f"{COMMANDS} does not exist: there is no write model to rebuild")
    return len(found.partitions)


def changelog_topics(settings: Settings, partitions: int) -> list[NewTopic]:
    return [
        NewTopic(
            topic,
            num_partitions=partitions,
            replication_factor=settings.topic_replication,
            config={"cleanup.policy": "compact"},
        )
        for topic in CHANGELOGS.values()
    ]


def group_members(admin: AdminClient) -> int:
    [future] = admin.describe_consumer_groups([GROUP], request_timeout=30).values()
    try:
        described = future.result()
    except KafkaException:
        return 0  # no such group: no worker ever ran
    if described.state in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD):
        return 0
    return len(described.members)


def holds_records(settings: Settings, topic: str) -> bool:
    consumer = tool_consumer(settings.kafka, "rebuild-write-model")
    try:
        return bool(partition_ranges(consumer, topic))
    finally:
        consumer.close()


def delete_topics(admin: AdminClient, topics: list[str]) -> None:
    for future in admin.delete_topics(topics, request_timeout=30).values():
        future.result()
    deadline = time.monotonic() + 60
    while set(topics) & set(admin.list_topics(timeout=10).topics):
        if time.monotonic() > deadline:
            raise RebuildRefused(f"Kafka did not delete {topics} within 60 s; run again")
        time.sleep(0.5)


def produce(
    settings: Settings,
    topic: str,
    docs: Mapping[Any, tuple[str | int, dict[str, Any]]],
    partitions: int,
) -> None:
    """Each document to the partition of its message key (or the partition it names: a
    replicated fact, keyed ``(key, partition)``)."""
    producer = Producer(producer_config(settings.kafka, **{"linger.ms": 20, "acks": "all"}))
    failures: list[str] = []

    def delivered(err: Any, _message: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for entry, (route, document) in docs.items():
        key = entry[0] if isinstance(entry, tuple) else entry
        partition = route if isinstance(route, int) else partition_of(route, partitions)
        while True:
            try:
                producer.produce(
                    topic,
                    key=orjson.dumps(key),  # Faust's tables key their changelogs in JSON
                    value=orjson.dumps(document),
                    partition=partition,
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(60) or failures:
        raise RebuildRefused(f"Kafka did not take every document ({failures[:3]}); run again")


def remove_worker_stores(folder: Path) -> list[str]:
    """Delete this machine's worker RocksDB folders: a worker then restores from the changelog."""
    removed = []
    for store in sorted(folder.glob("worker-*")) if folder.exists() else []:
        shutil.rmtree(store)
        removed.append(str(store))
    return removed
