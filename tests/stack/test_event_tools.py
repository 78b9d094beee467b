"""`aion events dump | tail | export | import` and the example consumer, against the real stack.

One tenant gets a history with many event types (deploys, a policy, a task that succeeds in the
real kernel worker, one that fails, a refused cancel); the tools must show exactly that tenant's
events, decoded, and an export imported into renamed topics must decode to the same values.
"""

from __future__ import annotations

import ast
import contextlib
import json
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pytest
import wasmtime
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from typer.testing import CliRunner

from aion.cli import app
from aion.event_tools import events_topics
from aion.settings import Settings
from schemas.codec import Codec, DecodeError, subject
from schemas.topics import DEADLETTER, TOPICS, events_topic
from streams.topic_snapshot import read_snapshot
from tests.conftest import ROOT, free_port
from tests.stack.identity import admin_client
from tests.stack.test_domain_api import WAIT
from tests.stack.test_kernel_runs import HOSTILE, agent, example, run_task
from tests.stack.test_orchestration import new_tenant
from tests.stack.test_tenants_api import new_tenant_id

TASKS = events_topic("task")
EXAMPLE = ROOT / "examples" / "consume_tasks.py"
# What the history below writes for its tenant, at least.
HISTORY = {
    "aion.tenant.TenantCreated", "aion.agent.AgentDeployed", "aion.enforcement.EnforcementDecided",
    "aion.policy.PolicyPut", "aion.task.TaskSubmitted", "aion.task.TaskAuthorized",
    "aion.task.TaskScheduled", "aion.run.RunStarted", "aion.artifact.ArtifactStored",
    "aion.run.RunSucceeded", "aion.task.TaskSucceeded", "aion.run.RunFailed",
    "aion.task.TaskFailed", "aion.CommandRejected", "aion.api_key.ApiKeyCreated",
}  # fmt: skip
TASK_EVENTS = {
    "TaskSubmitted", "TaskAuthorized", "TaskScheduled", "RunStarted", "ArtifactStored",
    "RunSucceeded", "TaskSucceeded", "RunFailed", "TaskFailed", "CommandRejected",
}  # fmt: skip


def events(*args: str, env: dict[str, str] | None = None) -> Any:
    """`aion events ...` in process; stdout and stderr apart."""
    return CliRunner().invoke(app, ["events", *args], env=env)


def dump(*args: str) -> list[dict[str, Any]]:
    result = events("dump", *args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert f"{len(lines)} event(s)" in result.stderr
    return lines


def short(line: dict[str, Any]) -> str:
    return str(line["record"]).rsplit(".", 1)[1]


@pytest.fixture(scope="module")
def history(system: str, settings: Settings) -> dict[str, Any]:
    """A tenant with a varied history, and another tenant that must never show up."""
    with admin_client(system, timeout=60) as api:
        tenant = new_tenant(api)
        assert agent(api, tenant, "echo", example("echo")).status_code == 201
        crash = bytes(wasmtime.wat2wasm(HOSTILE["crash"]))
        assert agent(api, tenant, "crash", crash).status_code == 201
        cedar = '@id("no-huge") forbid(principal, action, resource) when { false };'
        put = api.put(f"/v1/tenants/{tenant}/policies/no-huge", json={"cedar": cedar}, headers=WAIT)
        assert put.status_code == 200, put.text
        done = run_task(api, settings, tenant, "echo", {"text": "hi"}, "TaskSucceeded")
        task_id = done[0][1]["task_id"]
        run_task(api, settings, tenant, "crash", {}, "TaskFailed")
        cancel = api.post(f"/v1/tenants/{tenant}/tasks/{task_id}/cancel", json={}, headers=WAIT)
        assert cancel.status_code == 409, cancel.text
        key = api.post(
            f"/v1/tenants/{tenant}/api-keys", json={"name": "ci", "roles": ["viewer"]}, headers=WAIT
        )
        assert key.status_code == 201, key.text  # so that every events topic has a record
        other = new_tenant_id()
        created = api.post(
            "/v1/tenants", json={"tenant_id": other, "display_name": "O"}, headers=WAIT
        )
        assert created.status_code == 201, created.text
    lines = dump("--tenant", tenant)
    return {"tenant": tenant, "other": other, "task_id": task_id, "lines": lines}


# --- dump -------------------------------------------------------------------------------------


def test_dump_shows_the_tenants_events_decoded_and_only_them(
    history: dict[str, Any], settings: Settings
) -> None:
    tenant, lines = history["tenant"], history["lines"]
    assert {line["record"] for line in lines} >= HISTORY
    assert all(line["value"]["envelope"]["tenant_id"] == tenant for line in lines)
    assert all(line["topic"] in events_topics() for line in lines)
    # Logical types as ISO 8601 text, positions and keys as Kafka has them.
    line = next(line for line in lines if line["record"] == "aion.task.TaskSucceeded")
    occurred = datetime.fromisoformat(line["value"]["envelope"]["occurred_at"])
    assert occurred.tzinfo is not None
    assert abs((datetime.fromisoformat(line["timestamp"]) - occurred).total_seconds()) < 60
    assert line["key"] == f"{tenant}/{history['task_id']}"
    assert line["partition"] >= 0 and line["offset"] >= 0
    # The same events an independent reader finds under the task's key, in the same order.
    key = f"{tenant}/{history['task_id']}"
    codec = Codec(settings.registry)
    direct = [
        codec.decode(TASKS, message.value() or b"")[1]["envelope"]["event_id"]
        for message in read_snapshot(settings.kafka, TASKS, "tests-events")
        if message.key() == key.encode()
    ]
    dumped = [
        line["value"]["envelope"]["event_id"]
        for line in lines
        if (line["topic"], line["key"]) == (TASKS, key)
    ]
    assert dumped == direct
    # Each partition in offset order.
    for topic, partition in {(line["topic"], line["partition"]) for line in lines}:
        offsets = [
            ln["offset"] for ln in lines if (ln["topic"], ln["partition"]) == (topic, partition)
        ]
        assert offsets == sorted(offsets)
    assert history["other"] not in json.dumps(lines)


def positioned(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines by their Kafka position: a dump keeps each partition's order, and the partitions
    of a topic come in whatever order the broker serves them."""
    return sorted(lines, key=lambda line: (line["topic"], line["partition"], line["offset"]))


def test_dump_filters_by_type_aggregate_topic_and_time(history: dict[str, Any]) -> None:
    tenant, lines = history["tenant"], history["lines"]
    succeeded = dump("--tenant", tenant, "--type", "TaskSucceeded", "--type", "aion.run.RunFailed")
    assert Counter(short(line) for line in succeeded) == {"TaskSucceeded": 1, "RunFailed": 1}
    tasks = dump("--tenant", tenant, "--aggregate", "task")
    on_tasks = positioned([line for line in lines if line["topic"] == TASKS])
    assert positioned(tasks) == on_tasks
    policies = dump("--tenant", tenant, "--topic", events_topic("policy"))
    assert [short(line) for line in policies] == ["PolicyPut"]
    assert positioned(dump("--tenant", tenant, "--topic", TASKS, "--since", "1h")) == on_tasks
    assert dump("--tenant", tenant, "--topic", TASKS, "--since", "2999-01-01T00:00:00Z") == []
    limited = dump("--tenant", tenant, "--topic", TASKS, "--limit", "3")
    assert len(limited) == 3 and all(line in on_tasks for line in limited)
    other = dump("--tenant", history["other"], "--topic", events_topic("tenant"))
    assert [short(line) for line in other] == ["TenantCreated"]


def test_dump_of_a_topic_that_does_not_exist_names_aion_init(system: str) -> None:
    result = events("dump", "--topic", "aion.events.nothing")
    assert result.exit_code == 1
    assert "no topic aion.events.nothing" in result.output and "aion init" in result.output


# --- tail -------------------------------------------------------------------------------------


class Lines:
    """A child's output, line by line, with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.queue.put(line)

    def next(self, timeout: float = 60) -> str:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no line within {timeout} s")

    def until(self, text: str, timeout: float = 60) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while not seen or text not in seen[-1]:
            seen.append(self.next(max(0.1, deadline - time.monotonic())))
        return seen


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(child: subprocess.Popen[str]) -> int:
    if child.poll() is None:
        child.send_signal(signal.SIGINT)
    try:
        return child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        pytest.fail("it did not stop on SIGINT")


def test_tail_follows_new_events_from_the_end_until_ctrl_c(
    history: dict[str, Any], system: str
) -> None:
    tenant = history["tenant"]
    tail = spawn("-m", "aion", "events", "tail", "--tenant", tenant)
    try:
        Lines(tail.stderr).until("following")  # type: ignore[arg-type]
        out = Lines(tail.stdout)  # type: ignore[arg-type]
        with admin_client(system, timeout=60) as api:
            gone = api.delete(f"/v1/tenants/{tenant}/policies/no-huge", headers=WAIT)
            assert gone.status_code == 200, gone.text
        line = json.loads(out.next())  # not the history: tail starts at the end
        assert (line["record"], line["value"]["envelope"]["tenant_id"]) == (
            "aion.policy.PolicyDeleted",
            tenant,
        )
    finally:
        code = stop(tail)
    assert code == 0
    from_start = spawn(
        "-m", "aion", "events", "tail", "--tenant", tenant, "--from-beginning",
        "--type", "TenantCreated", "--limit", "1",
    )  # fmt: skip
    # From the beginning reads the whole history: seconds on a fresh stack, a minute or more
    # on one that has run `aion bench`.
    printed, err = from_start.communicate(timeout=280)
    assert from_start.returncode == 0, err
    [created] = [json.loads(line) for line in printed.splitlines()]
    assert created["record"] == "aion.tenant.TenantCreated"


# --- export and import ------------------------------------------------------------------------


@pytest.fixture()
def copies(settings: Settings) -> Iterator[dict[str, str]]:
    """A renamed copy of every events topic (same partitions), removed afterwards with its
    subjects."""
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    mapping = {topic: prefix + topic for topic in events_topics()}
    admin = AdminClient({"bootstrap.servers": settings.kafka})
    wanted = [
        NewTopic(t, settings.topic_partitions, settings.topic_replication) for t in mapping.values()
    ]
    for future in admin.create_topics(wanted, request_timeout=30).values():
        future.result()
    try:
        yield mapping
    finally:
        for future in admin.delete_topics(list(mapping.values()), request_timeout=30).values():
            with contextlib.suppress(KafkaException):
                future.result()
        registry = SchemaRegistryClient({"url": settings.registry, "timeout": 10})
        for name in registry.get_subjects():
            if name.startswith(prefix):
                registry.delete_subject(name)
                registry.delete_subject(name, permanent=True)


def test_export_then_import_into_renamed_topics_decodes_to_the_same_values(
    history: dict[str, Any], copies: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    tenant = history["tenant"]
    original = dump("--tenant", tenant)  # now: the tail test may have added to the history
    target = tmp_path / "tenant.avro"
    exported = events("export", "--tenant", tenant, "--to", str(target))
    assert exported.exit_code == 0, exported.output
    assert f"exported {len(original)} event(s)" in exported.stderr
    maps = [arg for old, new in copies.items() for arg in ("--topic-map", f"{old}={new}")]
    imported = events("import", "--from", str(target), *maps)
    assert imported.exit_code == 0, imported.output
    assert f"imported {len(original)} event(s)" in imported.stderr
    topic_args = [arg for new in copies.values() for arg in ("--topic", new)]
    copied = dump(*topic_args)
    assert len(copied) == len(original)

    def in_order(lines: list[dict[str, Any]], rename: dict[str, str]) -> dict[Any, list[Any]]:
        """Per (source topic, partition): the events in order, without offsets."""
        back = {new: old for old, new in rename.items()}
        grouped: dict[Any, list[Any]] = {}
        for ln in lines:
            where = (back.get(ln["topic"], ln["topic"]), ln["partition"])
            grouped.setdefault(where, []).append(
                (ln["key"], ln["timestamp"], ln["record"], ln["value"])
            )
        return grouped

    assert in_order(copied, copies) == in_order(original, {})
    # Each copy is framed with the id its schema has under the copy's own subject, and says
    # where it came from.
    registry = SchemaRegistryClient({"url": settings.registry, "timeout": 10})
    for message in read_snapshot(settings.kafka, copies[TASKS], "tests-events"):
        headers = dict(_texts(message.headers()))
        name = headers["aion-type"]
        (schema_id,) = struct.unpack(">I", (message.value() or b"")[1:5])
        assert schema_id == registry.get_latest_version(subject(copies[TASKS], name)).schema_id
        assert headers["aion-imported-from"].startswith(f"{TASKS}:")

    # Kafka has no dedupe: a second import of a file writes its events again.
    small = tmp_path / "policy.avro"
    policy = events_topic("policy")
    assert (
        events("export", "--tenant", tenant, "--topic", policy, "--to", str(small)).exit_code == 0
    )
    for _ in range(2):
        again = events("import", "--from", str(small), "--topic-map", f"{policy}={copies[policy]}")
        assert again.exit_code == 0, again.output
    twice = dump("--topic", copies[policy])
    assert Counter(short(ln) for ln in twice)["PolicyPut"] == 3  # 1 above, then 2 more


def _texts(headers: Any) -> list[tuple[str, str]]:
    return [(k, v.decode() if isinstance(v, bytes) else str(v)) for k, v in headers or []]


def test_import_into_a_cluster_without_the_topic_names_aion_init(
    history: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "t.avro"
    policy = events_topic("policy")
    assert (
        events(
            "export", "--tenant", history["tenant"], "--topic", policy, "--to", str(target)
        ).exit_code
        == 0
    )
    missing = f"it-{uuid.uuid4().hex[:8]}.{policy}"
    result = events("import", "--from", str(target), "--topic-map", f"{policy}={missing}")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"no topic {missing}" in text and "aion init" in text and "nothing was imported" in text


def test_kafka_or_the_registry_down_is_a_clear_error(
    history: dict[str, Any], copies: dict[str, str], tmp_path: Path
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    down = events("dump", env={"AION_KAFKA_BOOTSTRAP": nowhere})
    assert down.exit_code == 1
    assert f"Kafka at {nowhere} did not answer" in " ".join(down.output.split())
    export = tmp_path / "t.avro"
    policy = ["--tenant", history["tenant"], "--topic", events_topic("policy")]
    assert events("export", *policy, "--to", str(export)).exit_code == 0
    refused = events("import", "--from", str(export), env={"AION_KAFKA_BOOTSTRAP": nowhere})
    assert refused.exit_code == 1
    assert "did not answer" in refused.output
    registry = f"http://{nowhere}/apis/ccompat/v7"
    unread = events(
        "dump", "--topic", events_topic("tenant"), env={"AION_SCHEMA_REGISTRY_URL": registry}
    )
    assert unread.exit_code == 1
    assert "schema registry" in unread.output
    # Into a copy: should the registry answer after all, nothing lands on the real topic.
    into_copy = f"{events_topic('policy')}={copies[events_topic('policy')]}"
    unregistered = events(
        "import", "--from", str(export), "--topic-map", into_copy,
        env={"AION_SCHEMA_REGISTRY_URL": registry},
    )  # fmt: skip
    assert unregistered.exit_code == 1
    assert "schema registry" in unregistered.output


# --- consumers that know nothing of Aion ------------------------------------------------------


def test_the_example_uses_nothing_but_confluent_kafka() -> None:
    tree = ast.parse(EXAMPLE.read_text())
    imported = {
        str(node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {"__future__", "argparse", "confluent_kafka"}
    assert "topic_record_subject_name_strategy" in EXAMPLE.read_text()


def test_the_example_consumer_decodes_every_task_event_of_the_tenant(
    history: dict[str, Any], settings: Settings
) -> None:
    tenant = history["tenant"]
    expected = {
        (line["value"]["envelope"]["aggregate_id"], line["value"]["envelope"]["aggregate_version"],
         short(line))
        for line in history["lines"]
        if line["topic"] == TASKS
    }  # fmt: skip
    assert {kind for _, _, kind in expected} >= TASK_EVENTS
    child = spawn(str(EXAMPLE), "--bootstrap", settings.kafka, "--registry", settings.registry)
    seen: set[tuple[str, int, str]] = set()
    try:
        out = Lines(child.stdout)  # type: ignore[arg-type]
        deadline = time.monotonic() + 120
        while not expected <= seen and time.monotonic() < deadline:
            parts = out.next(max(0.1, deadline - time.monotonic())).split()
            # "<date> <time> <tenant>/<task> v<version> <Event> [why...]"
            if len(parts) >= 5 and parts[2].startswith(f"{tenant}/"):
                seen.add((parts[2], int(parts[3].removeprefix("v")), parts[4]))
    finally:
        code = stop(child)
    assert expected <= seen, sorted(expected - seen)
    assert code == 0, child.stderr.read() if child.stderr else ""


def contained(part: Any, whole: Any) -> bool:
    """``part`` (decoded with the writer's schema) is in ``whole`` (resolved to ours: it may
    carry fields a newer schema added)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and contained(v, whole[k]) for k, v in part.items()
        )
    if isinstance(part, list):
        return (
            isinstance(whole, list)
            and len(part) == len(whole)
            and all(contained(p, w) for p, w in zip(part, whole, strict=True))
        )
    return bool(part == whole)


def test_a_bare_consumer_with_the_registry_url_decodes_every_record_of_every_topic(
    history: dict[str, Any], settings: Settings
) -> None:
    """Every message Aion itself can decode, a stranger's AvroDeserializer decodes too (given
    only the registry URL and the subject strategy docs/topics.md names), to the same values;
    and what neither decodes (poison that tests produce on purpose) is the same set."""
    client = SchemaRegistryClient({"url": settings.registry, "timeout": 10})
    bare = AvroDeserializer(
        client, conf={"subject.name.strategy": topic_record_subject_name_strategy}
    )
    codec = Codec(settings.registry)
    seen: dict[str, set[str]] = {}
    with_messages: set[str] = set()
    for spec in TOPICS:
        if spec.name == DEADLETTER:
            continue
        for message in read_snapshot(settings.kafka, spec.name, "tests-bare-consumer"):
            with_messages.add(spec.name)
            data = message.value() or b""
            where = f"{spec.name}[{message.partition()}]@{message.offset()}"
            try:
                name, ours = codec.decode(spec.name, data)
            except DecodeError:
                with pytest.raises(Exception):  # noqa: B017 - whatever the client raises
                    bare(data, SerializationContext(spec.name, MessageField.VALUE))
                continue
            theirs = bare(data, SerializationContext(spec.name, MessageField.VALUE))
            assert contained(theirs, ours), where
            assert name in spec.records, where
            seen.setdefault(spec.name, set()).add(name)
    # Every topic of the catalogue that has messages was decoded, the history's records too.
    assert set(seen) == set(with_messages)
    assert {*events_topics(), "aion.commands", "aion.kernel.dispatch"} <= set(seen)
    assert set().union(*seen.values()) >= HISTORY
