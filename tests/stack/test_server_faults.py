"""The servers Aion stands on, killed and restarted under load (issue 17, finding 15).

For each of Postgres, Redis, the S3 server, the schema registry and the Kafka broker: tasks
flow at a steady rate while the server is killed with SIGKILL and started again a few seconds
later. The test passes when no role died, readiness showed the outage (where the API depends
on the server) and its end, every task the API accepted ended, and processing resumed on its
own. It prints, per fault, what a client saw and how long recovery took: the table in
docs/operations.md ("When a server fails") comes from these lines.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest

from aion.settings import Settings
from aion.stack.manager import Stack
from commands.task import TERMINAL
from tests.conftest import AionProcesses
from tests.stack.identity import admin_headers
from tests.stack.test_kernel_runs import agent, example
from tests.stack.test_orchestration import new_tenant

RATE = 20.0  # tasks/s the client submits
BEFORE_S, DOWN_S, AFTER_S = 4.0, 6.0, 10.0  # load before the kill, outage, load after it
# The servers whose outage the API's readiness names (the others degrade single features).
IN_READINESS = {"postgres", "kafka", "registry"}


@dataclass
class Load:
    """What the client saw while one server was killed and restarted."""

    accepted: set[str] = field(default_factory=set)
    refused: dict[int, int] = field(default_factory=dict)  # status -> count (after retries)
    errors: int = 0  # requests that got no answer
    readiness: list[tuple[float, int]] = field(default_factory=list)  # (time, status)


class Client(threading.Thread):
    """Submits tasks at RATE until told to stop; a failed request is sent again (same key)
    for up to 60 s, as the SDK does."""

    def __init__(self, base: str, tenant: str, fault: str, load: Load) -> None:
        super().__init__(daemon=True)
        self.base, self.tenant, self.fault, self.load = base, tenant, fault, load
        self.stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        with httpx.Client(base_url=self.base, headers=admin_headers(), timeout=10) as client:
            n = 0
            while not self.stopping.is_set():
                time.sleep(max(0.0, started + n / RATE - time.monotonic()))
                self.submit(client, f"{self.fault}-{n:04d}")
                n += 1

    def submit(self, client: httpx.Client, task_id: str) -> None:
        body = {"task_id": task_id, "agent_name": "wecho", "input": '{"n": 1}'}
        key = f"fault-{self.tenant}-{task_id}"
        deadline, status = time.monotonic() + 60, 0
        while time.monotonic() < deadline:
            try:
                answer = client.post(
                    f"/v1/tenants/{self.tenant}/tasks", json=body, headers={"Idempotency-Key": key}
                )
                status = answer.status_code
                if status in (200, 201, 202):
                    self.load.accepted.add(task_id)
                    return
            except httpx.HTTPError:
                self.load.errors += 1
            time.sleep(0.5)
        self.load.refused[status] = self.load.refused.get(status, 0) + 1


class Readiness(threading.Thread):
    def __init__(self, base: str, load: Load) -> None:
        super().__init__(daemon=True)
        self.base, self.load = base, load
        self.stopping = threading.Event()

    def run(self) -> None:
        begin = time.monotonic()
        while not self.stopping.is_set():
            try:
                status = httpx.get(f"{self.base}/readyz", timeout=5).status_code
            except httpx.HTTPError:
                status = 0
            self.load.readiness.append((time.monotonic() - begin, status))
            time.sleep(0.5)


def kill(stack: Stack, name: str) -> None:
    pid = stack.service(name).process.pid()
    assert pid is not None, f"{name} is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while stack.service(name).process.pid() is not None:
        assert time.monotonic() < deadline, f"{name} did not die"
        time.sleep(0.1)


def revive(processes: AionProcesses) -> None:
    dead = [role for role, proc in processes.procs.items() if proc.poll() is not None]
    for role in dead:
        processes.procs.pop(role)
        processes.start_role(role)
    if dead:
        processes.wait_ready()


def count(settings: Settings, sql: str, *args: object) -> int:
    """One number from the read model, on a new connection (Postgres itself may have been
    killed since the last); -1 while it does not answer."""
    try:
        with psycopg.connect(settings.database, autocommit=True, connect_timeout=5) as conn:
            (found,) = conn.execute(sql, args).fetchone() or (0,)
            return int(found)
    except psycopg.OperationalError:
        return -1


def ended(settings: Settings, tenant: str, prefix: str) -> int:
    return count(
        settings,
        "select count(*) from tasks where tenant_id = %s and task_id like %s and status = any(%s)",
        tenant,
        f"{prefix}-%",
        list(TERMINAL),
    )


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("server", ["redis", "s3", "registry", "postgres", "kafka"])
def test_a_server_killed_under_load_loses_nothing_and_everything_resumes(
    server: str,
    stack: Stack,
    processes: AionProcesses,
    api: httpx.Client,
    settings: Settings,
) -> None:
    revive(processes)  # a role an earlier case killed fails that case, not this one
    tenant = new_tenant(api, max_concurrent_tasks=100, tasks_per_minute=1_000_000)
    quotas = {"max_concurrency": 100, "max_retries": 5, "retry_backoff_ms": 2000}
    deployed = agent(api, tenant, "wecho", example("wasi_echo"), "wasi_command", quotas=quotas)
    assert deployed.status_code == 201, deployed.text
    load = Load()
    client = Client(processes.base, tenant, server, load)
    readiness = Readiness(processes.base, load)
    readiness.start()
    client.start()
    time.sleep(BEFORE_S)
    killed_at = time.monotonic()
    kill(stack, server)
    time.sleep(DOWN_S)
    stack.up()  # starts what is not running, and waits until it is ready
    restarted_at = time.monotonic()
    time.sleep(AFTER_S)
    client.stopping.set()
    client.join(timeout=120)
    assert not client.is_alive(), "the client's last request never ended"
    deadline = time.monotonic() + 300
    while (done := ended(settings, tenant, server)) < len(load.accepted):
        processes.check_alive()  # no role died
        assert time.monotonic() < deadline, f"{len(load.accepted) - done} accepted never ended"
        time.sleep(1)
    all_ended_s = time.monotonic() - restarted_at
    readiness.stopping.set()
    readiness.join(timeout=30)
    processes.check_alive()
    statuses = [(t, s) for t, s in load.readiness]
    outage = [t for t, s in statuses if s != 200]
    if server in IN_READINESS:
        assert outage, f"readiness never showed {server} down"
    assert statuses[-1][1] == 200, "readiness did not recover"
    back_s = max(outage) - (restarted_at - killed_at) - BEFORE_S if outage else 0.0
    succeeded = count(
        settings, "select count(*) from tasks where tenant_id = %s and status = 'succeeded'", tenant
    )
    print(
        f"fault {server}: {len(load.accepted)} accepted, refused {load.refused}, "
        f"{load.errors} request errors, readiness down {len(outage) / 2:.1f} s "
        f"(ready {back_s:.1f} s after the restart), all accepted ended {all_ended_s:.1f} s "
        f"after the restart, {succeeded} succeeded"
    )
    assert int(succeeded) == len(load.accepted), "a task failed because of the outage"
