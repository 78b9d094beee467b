"""Chaos under load (issue 16): roles killed with SIGKILL while tasks flow, then the log and
the read model checked against each other.

A client submits tasks one by one, each with its own Idempotency-Key, and retries a failed
request with the same key (as the SDK does). Meanwhile the worker, the kernel, the projector
and the API are each killed with SIGKILL and restarted: a retry of a key whose API died before
producing takes the claim over (``api.idempotency``).
Afterwards, from Kafka: no accepted task is lost, no (aggregate, version) holds two different
events, no aggregate's versions have a gap, every task ended exactly once, and the read model
equals the log. The duplicate records at-least-once leaves (the same event id twice) are
counted and printed: consumers drop them by event id, as every projection here does.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import TopicPartition

from aion.settings import Settings
from commands.task import TERMINAL
from schemas.codec import Codec
from schemas.topics import events_topic
from tests.conftest import AionProcesses
from tests.stack.identity import admin_headers
from tests.stack.kafka_reading import reader
from tests.stack.test_kernel_runs import agent, example
from tests.stack.test_orchestration import new_tenant

TASKS = 2000
RATE = 100.0  # tasks/s the client submits: the load spans every kill
KILLED = ("worker", "kernel", "projector", "serve")
ENDINGS = {"TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskCancelled", "TaskRejected"}


@pytest.fixture
def db(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(settings.database, autocommit=True) as conn:
        yield conn


class Submitter(threading.Thread):
    """Submits TASKS tasks one by one; a request that fails is sent again, same key."""

    def __init__(self, base: str, tenant: str) -> None:
        super().__init__(daemon=True)
        self.base, self.tenant = base, tenant
        self.accepted: set[str] = set()
        self.retries = 0

    def run(self) -> None:
        started = time.monotonic()
        with httpx.Client(base_url=self.base, headers=admin_headers(), timeout=10) as client:
            for n in range(TASKS):
                time.sleep(max(0.0, started + n / RATE - time.monotonic()))
                task_id = f"c-{n:04d}"
                body = {"task_id": task_id, "agent_name": "wecho", "input": '{"n": 1}'}
                key = f"chaos-{self.tenant}-{n}"
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    try:
                        answer = client.post(
                            f"/v1/tenants/{self.tenant}/tasks",
                            json=body,
                            headers={"Idempotency-Key": key},
                        )
                        if answer.status_code in (200, 201, 202):
                            self.accepted.add(task_id)
                            break
                    except httpx.HTTPError:
                        pass
                    self.retries += 1
                    time.sleep(0.2)


def kill_and_restart(processes: AionProcesses, role: str) -> None:
    proc = processes.procs[role]
    proc.kill()  # SIGKILL: no clean shutdown, no commit, no flush
    proc.wait()
    processes.procs.pop(role)
    processes.start_role(role)


def task_log(settings: Settings, tenant: str, since_ms: int) -> list[dict[str, Any]]:
    """Every record of the tenant's tasks on aion.events.task since ``since_ms``, decoded."""
    topic = events_topic("task")
    codec = Codec(settings.registry)
    consumer = reader(settings)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        starts = consumer.offsets_for_times(
            [TopicPartition(topic, p, since_ms) for p in partitions], timeout=10
        )
        remaining = {}
        for start in starts:
            _, high = consumer.get_watermark_offsets(start, timeout=10)
            if start.offset >= 0 and high > start.offset:
                remaining[start.partition] = high
        consumer.assign([s for s in starts if s.partition in remaining])
        found = []
        prefix = f"{tenant}/".encode()
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is None or message.error():
                continue
            if message.offset() + 1 >= remaining.get(message.partition(), 0):
                remaining.pop(message.partition(), None)
            if (message.key() or b"").startswith(prefix):
                name, value = codec.decode(topic, message.value() or b"")
                found.append({"name": name.rsplit(".", 1)[1], **value})
        return found
    finally:
        consumer.close()


def wait_ended(db: psycopg.Connection[Any], tenant: str, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    terminal = list(TERMINAL)
    while True:
        (ended,) = db.execute(
            "select count(*) from tasks where tenant_id = %s and status = any(%s)",
            (tenant, terminal),
        ).fetchone() or (0,)
        if int(ended) >= count or time.monotonic() > deadline:
            return int(ended)
        time.sleep(1)


def test_every_role_killed_under_load_loses_no_task_and_ends_each_once(
    processes: AionProcesses, api: httpx.Client, settings: Settings, db: psycopg.Connection[Any]
) -> None:
    tenant = new_tenant(api, max_concurrent_tasks=100, tasks_per_minute=1_000_000)
    deployed = agent(
        api, tenant, "wecho", example("wasi_echo"), "wasi_command", quotas={"max_concurrency": 100}
    )
    assert deployed.status_code == 201, deployed.text
    since_ms = int(time.time() * 1000) - 1000
    submitter = Submitter(processes.base, tenant)
    submitter.start()
    try:
        for role in KILLED:
            time.sleep(3)
            assert submitter.is_alive(), "the load ended before every role was killed"
            kill_and_restart(processes, role)
        submitter.join(timeout=300)
    finally:
        processes.wait_ready()
    assert not submitter.is_alive(), "the client could not submit every task"
    assert len(submitter.accepted) == TASKS, f"{TASKS - len(submitter.accepted)} never accepted"
    ended = wait_ended(db, tenant, TASKS, timeout=300)
    log = task_log(settings, tenant, since_ms)

    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in log:
        by_task[record["envelope"]["aggregate_id"].split("/", 1)[1]].append(record)
    # No accepted task lost.
    submitted = {
        t for t, records in by_task.items() if any(r["name"] == "TaskSubmitted" for r in records)
    }
    assert submitter.accepted <= submitted, sorted(submitter.accepted - submitted)[:5]
    duplicates = 0
    for task_id, records in by_task.items():
        versions: dict[int, set[str]] = defaultdict(set)
        ids: set[str] = set()
        for record in records:
            env = record["envelope"]
            if record["name"] == "CommandRejected":
                continue  # a refused command's record names the version it was refused at
            duplicates += env["event_id"] in ids
            ids.add(env["event_id"])
            versions[int(env["aggregate_version"])].add(env["event_id"])
        # No (aggregate, version) holds two different events, and no version is missing.
        assert all(len(events) == 1 for events in versions.values()), (task_id, versions)
        assert sorted(versions) == list(range(1, len(versions) + 1)), (task_id, sorted(versions))
        # Every task ended exactly once (a duplicate record of its ending shares its id).
        endings = {r["envelope"]["event_id"] for r in records if r["name"] in ENDINGS}
        assert len(endings) == 1, (task_id, [r["name"] for r in records])
    # The read model equals the log: each row's status and version are the log's last.
    rows = dict(
        (str(task_id), (str(status), int(version)))
        for task_id, status, version in db.execute(
            "select task_id, status, version from tasks where tenant_id = %s", (tenant,)
        ).fetchall()
    )
    assert ended == TASKS == len(rows)
    for task_id, records in by_task.items():
        events = [r for r in records if r["name"] != "CommandRejected"]
        last = max(int(r["envelope"]["aggregate_version"]) for r in events)
        ending = next(r["name"] for r in events if r["name"] in ENDINGS)
        status = {"TaskSucceeded": "succeeded", "TaskFailed": "failed",
                  "TaskTimedOut": "timed_out", "TaskCancelled": "cancelled",
                  "TaskRejected": "rejected"}[ending]  # fmt: skip
        assert rows[task_id] == (status, last), (task_id, rows[task_id], status, last)
    print(
        f"chaos: {TASKS} tasks, {submitter.retries} client retries, {len(log)} records, "
        f"{duplicates} duplicate records (same event id), statuses "
        f"{sorted({s for s, _ in rows.values()})}"
    )
