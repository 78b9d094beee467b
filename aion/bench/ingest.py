"""Scenario 1, command ingest over HTTP: Aion's command endpoint beside the bare endpoint
(aion/bench/bare_endpoint.py) on the same server stack, loaded by wrk in turns.

Scenario 3, end-to-end latency: commands sent at a fixed rate (open loop), each timed from its
202 to its row in the Postgres read model (command_outcomes, written in the same transaction
as the entity rows), watched by a separate connection every few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from aion.bench.bare_endpoint import bench_envelope
from aion.bench.harness import Figure
from aion.bench.http_load import Load, post_models
from aion.bench.system import System, free_port, wait_for
from aion.settings import Settings

WAIT = {"Prefer": "wait=20"}
BARE_TOPIC = "aion.bench.bare-ingest"


RAISED = {"max_concurrent_tasks": 1000, "tasks_per_minute": 1_000_000}


def bench_tenant(system: System, limits: dict[str, int] | None = None) -> str:
    """A fresh tenant (created and waited for), by default with task limits out of the way."""
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    limits = limits or RAISED
    created = httpx.post(
        f"{system.api}/v1/tenants",
        json={"tenant_id": tenant, "display_name": "Benchmark", "limits": limits},
        headers={**system.headers, **WAIT},
        timeout=30,
    )
    created.raise_for_status()
    return tenant


@dataclass
class BareEndpoint:
    port: int
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, settings: Settings) -> BareEndpoint:
        port = free_port()
        bench_topic(settings, create=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "aion.bench.bare_endpoint", str(port), BARE_TOPIC],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(f"http://127.0.0.1:{port}/")
        return cls(port, proc)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def bench_topic(settings: Settings, create: bool) -> None:
    """The baselines' own topic (nothing consumes it): made by the scenarios that need it,
    deleted once at the end of the run (a topic re-made right after its deletion may not
    exist yet)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka})
    if create:
        spec = NewTopic(
            BARE_TOPIC,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication,
            config={"retention.ms": "600000"},
        )
        futures = admin.create_topics([spec], request_timeout=30)
    else:
        futures = admin.delete_topics([BARE_TOPIC], request_timeout=30)
    for future in futures.values():
        with contextlib.suppress(KafkaException):  # already there / already gone
            future.result()


@contextlib.contextmanager
def downstream_paused(system: System, tenant: str) -> Iterator[None]:
    """The worker, projector and kernel stopped (SIGSTOP) while the endpoints are loaded, then
    resumed and given time to catch up: both endpoints then share the two cores with Kafka and
    wrk only, and the backlog one run leaves does not slow the next (decision 40)."""
    paused = [pid for role, pid in system.pids.items() if role != "serve"]
    for pid in paused:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
    settle(system, tenant)


def settle(system: System, tenant: str, timeout: float = 600) -> None:
    """Wait until everything sent to ``tenant`` is decided (a marker command behind it on its
    partition has its outcome) and every projection has caught up (no lag)."""
    deadline = time.monotonic() + timeout
    marker = {"model_name": f"marker-{uuid.uuid4().hex[:8]}", "provider": "local", "kind": "chat"}
    sent = httpx.post(
        f"{system.api}/v1/tenants/{tenant}/models",
        json=marker,
        headers=system.headers,
        timeout=30,
    )
    sent.raise_for_status()
    status_url = f"{system.api}{sent.json()['status_url']}"
    while time.monotonic() < deadline:
        if httpx.get(status_url, headers=system.headers, timeout=10).json()["status"] != "pending":
            break
        time.sleep(0.5)
    while time.monotonic() < deadline:
        lag = httpx.get(f"{system.api}/readyz", timeout=30).json().get("projection_lag")
        if isinstance(lag, dict) and sum(int(v) for v in lag.values()) == 0:
            return
        time.sleep(0.5)


def ingest(system: System, trials: int, seconds: float, connections: int = 32) -> list[Figure]:
    tenant = bench_tenant(system)
    path = f"/v1/tenants/{tenant}/models"
    bare = BareEndpoint.start(system.settings)
    ours: list[Load] = []
    base: list[Load] = []
    try:
        post_models(f"{system.api}{path}", system.headers, 1, connections)  # warm-up
        post_models(f"http://127.0.0.1:{bare.port}{path}", {}, 1, connections)
        for _ in range(trials):
            ours.append(post_models(f"{system.api}{path}", system.headers, seconds, connections))
            base.append(
                post_models(f"http://127.0.0.1:{bare.port}{path}", {}, seconds, connections)
            )
    finally:
        bare.stop()
    failed = sum(load.failed for load in ours)
    statuses: dict[int, int] = {}
    for load in ours:
        for status, count in load.bad_statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    note = f"{connections} connections"
    if failed:
        note += f"; {failed} non-2xx or socket errors {statuses}"
    scenario = "1 HTTP ingest"
    return [
        Figure(
            scenario,
            "commands/s",
            "/s",
            [load.requests_per_s for load in ours],
            [load.requests_per_s for load in base],
            "bare endpoint",
            target=">= 2,000/s and >= 0.5x the bare endpoint",
            check=lambda f: f.median >= 2000 and (f.ratio or 0) >= 0.5,
            note=note,
        ),
        Figure(
            scenario,
            "p50 latency",
            "ms",
            [load.p50_ms for load in ours],
            [load.p50_ms for load in base],
            "bare endpoint",
            higher_is_better=False,
        ),
        Figure(
            scenario,
            "p99 latency",
            "ms",
            [load.p99_ms for load in ours],
            [load.p99_ms for load in base],
            "bare endpoint",
            higher_is_better=False,
            target="< 50 ms",
            check=lambda f: f.median < 50,
        ),
    ]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


async def _fixed_rate(system: System, tenant: str, rate: float, seconds: float) -> list[float]:
    """Latencies (ms) from each command's 202 to its outcome row in Postgres."""
    accepted: dict[str, float] = {}
    seen: dict[str, float] = {}
    sending = True

    async def watch() -> None:
        async with await psycopg.AsyncConnection.connect(
            system.settings.database, autocommit=True
        ) as conn:
            while sending or len(seen) < len(accepted):
                waiting = [c for c in accepted if c not in seen]
                if waiting:
                    cur = await conn.execute(
                        "select command_id from command_outcomes where command_id = any(%s)",
                        (waiting,),
                    )
                    now = time.time()
                    for (command_id,) in await cur.fetchall():
                        seen[command_id] = now
                await asyncio.sleep(0.003)

    async def send(client: httpx.AsyncClient, n: int) -> None:
        body = {
            "model_name": f"e2e-{uuid.uuid4().hex[:10]}-{n}",
            "provider": "local",
            "kind": "chat",
        }
        response = await client.post(f"/v1/tenants/{tenant}/models", json=body)
        if response.status_code == 202:
            accepted[response.json()["command_id"]] = time.time()

    watcher = asyncio.create_task(watch())
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        base_url=system.api, headers=system.headers, timeout=30, limits=limits
    ) as client:
        started = time.monotonic()
        pending = []
        for n in range(int(rate * seconds)):
            due = started + n / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            pending.append(asyncio.create_task(send(client, n)))
        await asyncio.gather(*pending)
    sending = False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(watcher, timeout=60)
    return [(seen[c] - accepted[c]) * 1000 for c in accepted if c in seen]


def end_to_end(system: System, trials: int, seconds: float, rate: float = 200) -> list[Figure]:
    tenant = bench_tenant(system)
    p50s, p95s, p99s = [], [], []
    for _ in range(trials):
        latencies = asyncio.run(_fixed_rate(system, tenant, rate, seconds))
        p50s.append(statistics.median(latencies) if latencies else float("nan"))
        p95s.append(percentile(latencies, 0.95))
        p99s.append(percentile(latencies, 0.99))
    scenario = f"3 end-to-end at {rate:g}/s"
    return [
        Figure(scenario, "p50 accepted->row", "ms", p50s, higher_is_better=False),
        Figure(scenario, "p95 accepted->row", "ms", p95s, higher_is_better=False),
        Figure(
            scenario,
            "p99 accepted->row",
            "ms",
            p99s,
            higher_is_better=False,
            target="< 250 ms",
            check=lambda f: f.median < 250,
        ),
    ]


def _batch_body(n: int, run: str, start: int) -> dict[str, object]:
    tasks = [
        {"task_id": f"b-{run}-{start + i}", "agent_name": "bench-none", "input": "{}"}
        for i in range(n)
    ]
    return {"tasks": tasks}


def _raw_producer_rate(system: System, tenant: str, n: int, run: str) -> float:
    """Tasks/s of a bare confluent-kafka producer sending the same SubmitTask records (the
    bytes of aion.commands records, to the benchmark's own topic: nothing decides them)."""
    from confluent_kafka import Producer

    from schemas.codec import Codec
    from schemas.topics import COMMANDS, producer_config

    codec = Codec(system.settings.registry)
    producer = Producer(producer_config(system.settings.kafka, **{"linger.ms": 2}))
    started = time.perf_counter()
    for i in range(n):
        command_id = str(uuid.uuid4())
        task_id = f"r-{run}-{i}"
        envelope = bench_envelope(
            command_id, "aion.task.SubmitTask", tenant, "task", f"{tenant}/{task_id}"
        )
        value = codec.encode(
            COMMANDS,
            "aion.task.SubmitTask",
            {
                "envelope": envelope,
                "task_id": task_id,
                "agent_name": "bench-none",
                "input": "{}",
                "labels": {},
                "deadline_ms": None,
                "submitted_by": None,
            },
        )
        while True:
            try:
                producer.produce(BARE_TOPIC, key=tenant.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    left = producer.flush(30)
    if left:
        raise RuntimeError(f"{left} records of the raw producer were not delivered in 30 s")
    return n / (time.perf_counter() - started)


def bulk(system: System, trials: int, batches: int, size: int = 500) -> list[Figure]:
    """Scenario 2: tasks/s through POST .../tasks/batch (``batches`` requests of ``size``,
    one after another) beside a raw producer sending as many of the same records."""
    tenant = bench_tenant(system)
    ours, base = [], []
    with (
        downstream_paused(system, tenant),
        httpx.Client(base_url=system.api, headers=system.headers, timeout=60) as client,
    ):
        for trial in range(trials):
            run = f"{uuid.uuid4().hex[:6]}{trial}"
            started = time.perf_counter()
            for b in range(batches):
                answer = client.post(
                    f"/v1/tenants/{tenant}/tasks/batch", json=_batch_body(size, run, b * size)
                )
                answer.raise_for_status()
            ours.append(batches * size / (time.perf_counter() - started))
            base.append(_raw_producer_rate(system, tenant, batches * size, run))
    return [
        Figure(
            "2 bulk ingest",
            f"tasks/s ({size} per request)",
            "/s",
            ours,
            base,
            "raw confluent-kafka producer",
        )
    ]
