"""Test fixtures: the real local stack, started once per test run, and Aion's processes on it.

The stack is the same one `make up` uses (same home, same ports): if it is already running the
tests use it and leave it running; otherwise they start it and stop it at the end. Aion's own
processes (API, worker, projector) are started for the session on a free API port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aion.settings import Settings
from aion.stack.manager import Stack

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Pure tests first: they answer in seconds, before the stack starts."""
    items.sort(key=lambda item: "/tests/stack/" in str(item.path))


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    stack = Stack(settings)
    running_before = {s.name for s in stack.services if s.has_process and s.process.pid()}
    # Straight to the terminal, past pytest's capture: a first run builds and downloads for
    # minutes, and CI's log should show where it is.
    stack.up(lambda line: print(f"[stack] {line}", file=sys.__stderr__, flush=True))
    yield stack
    for service in reversed(stack.services):
        if service.has_process and not service.external and service.name not in running_before:
            service.process.stop()


@pytest.fixture(scope="session")
def system(
    stack: Stack, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """API, stream worker and projector as real processes; yields the API's base URL."""
    from aion.bootstrap import bootstrap

    bootstrap(settings)
    port = free_port()
    logs = tmp_path_factory.mktemp("aion-logs")
    env = {**os.environ, "AION_API_PORT": str(port)}
    procs = []
    for role in ("serve", "worker", "projector"):
        log = (logs / f"{role}.log").open("wb")
        procs.append(
            (
                role,
                log,
                subprocess.Popen(
                    [sys.executable, "-m", "aion", role],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
            )
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        dead = [(r, lg) for r, lg, p in procs if p.poll() is not None]
        if dead:
            role, log = dead[0]
            pytest.fail(f"aion {role} exited at start:\n{Path(log.name).read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("the API did not become ready within 90 s")
        time.sleep(0.3)
    wait_until_commands_are_decided(base, procs)
    yield base
    for _, _log, proc in procs:
        proc.terminate()
    for role, log, proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        print(
            f"--- aion {role} log tail ---\n{Path(log.name).read_text()[-1500:]}", file=sys.stderr
        )


def wait_until_commands_are_decided(base: str, procs: list) -> None:  # type: ignore[type-arg]
    """The worker is ready when it decides a command: a probe tenant, created and waited for.

    A worker joining a group that a crashed member left behind may wait for that member's
    session to expire before it gets partitions; the tests must not start before that.
    """
    deadline = time.monotonic() + 120
    probe = {"tenant_id": f"probe-{os.getpid()}-{int(time.time())}", "display_name": "Probe"}
    while time.monotonic() < deadline:
        dead = [role for role, _, p in procs if p.poll() is not None]
        if dead:
            pytest.fail(f"aion {dead[0]} exited during start-up")
        response = httpx.post(f"{base}/v1/tenants?wait=5", json=probe, timeout=30)
        if response.status_code in (201, 409):
            return
        time.sleep(0.5)
    pytest.fail("the worker decided no command within 120 s")


@pytest.fixture()
def api(system: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system, timeout=30) as client:
        yield client
