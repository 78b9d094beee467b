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
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from aion.settings import Settings
from aion.stack.manager import Stack
from tests.stack.identity import admin_headers

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


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, and kill what does not end within 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class AionProcesses:
    """API, worker and projector as child processes, logs kept under .aion/logs/test-processes."""

    ROLES = ("serve", "worker", "projector", "kernel")

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.logs = settings.stack_dir / "logs" / "test-processes"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for role in self.ROLES:
            self.start_role(role)

    def start_role(self, role: str, **extra_env: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "AION_API_PORT": str(self.port),
            # A silent kernel worker is given up 1.5 s after its run's timeout (10 s in use),
            # so that the watchdog test does not wait long.
            "AION_WATCHDOG_GRACE_MS": "1500",
            # Rate limits out of the way of tests that are not about them (and of the
            # benchmark's smoke run); the rate limit tests give their API keys their own.
            "AION_RATE_TENANT_PER_S": "100000",
            "AION_RATE_TENANT_BURST": "100000",
            "AION_RATE_CALLER_PER_S": "100000",
            "AION_RATE_CALLER_BURST": "100000",
            **extra_env,
        }
        name = extra_env.get("AION_WORKER_ID", role) if role == "worker" else role
        # Every process writes its finished spans here, so tests can follow one trace.
        env.setdefault("AION_TRACE_FILE", str(self.logs / f"traces-{name}.jsonl"))
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aion", role],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs[role] = proc
        return proc

    def stop_role(self, role: str) -> None:
        stop_process(self.procs.pop(role))  # no longer expected to be alive

    @contextmanager
    def extra_api(self, name: str, root: Path = ROOT, **env: str) -> Iterator[str]:
        """Another `aion serve` (code from ``root``) on the session's servers with its own
        settings, logged to ``<name>.log``; yields its base URL once ``/readyz`` answers 200."""
        port = free_port()
        full = {
            **os.environ,
            "AION_API_PORT": str(port),
            "AION_TRACE_FILE": str(self.logs / f"traces-{name}.jsonl"),
            **env,
        }
        log_path = self.logs / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aion", "serve"],
                env=full,
                cwd=root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"the API {name} exited:\n{log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"the API {name} was not ready in 120 s"
                time.sleep(0.3)
            yield base
        finally:
            stop_process(proc)

    def check_alive(self) -> None:
        for role, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{role}.log").read_text()[-3000:]
                pytest.fail(f"aion {role} exited (code {proc.returncode}):\n{tail}")

    def wait_ready(self) -> None:
        """The API answers /readyz, then the worker decides a probe command.

        A worker joining a group that a crashed member left behind may wait for that member's
        session to expire before it gets partitions; the tests must not start before that.
        """
        deadline = time.monotonic() + 120
        probe = {"tenant_id": f"probe-{os.getpid()}-{int(time.time())}", "display_name": "P"}
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    decided = httpx.post(
                        f"{self.base}/v1/tenants?wait=5",
                        json=probe,
                        timeout=30,
                        headers=admin_headers(),
                    )
                    if decided.status_code in (201, 409):
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        pytest.fail("the API and worker were not ready within 120 s")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def processes(stack: Stack, settings: Settings) -> Iterator[AionProcesses]:
    """API, stream worker and projector as real processes, for the whole session."""
    from aion.bootstrap import bootstrap

    bootstrap(settings)
    running = AionProcesses(settings)
    try:
        running.start()
        running.wait_ready()
        yield running
    finally:
        running.stop()  # also when start-up failed: never leave a worker holding RocksDB


@pytest.fixture(scope="session")
def system(processes: AionProcesses) -> str:
    """The API's base URL."""
    return processes.base


@pytest.fixture()
def api(system: str) -> Iterator[httpx.Client]:
    from tests.stack.identity import admin_client

    with admin_client(system) as client:
        yield client
