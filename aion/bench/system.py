"""The system a benchmark runs against: the local stack and Aion's four process roles.

``aion bench`` starts its own roles on a free API port, with rate limits out of the way (the
load is one tenant and one caller) and metrics ports off; ``--api URL`` measures a system that
is already running (the test suite's smoke run does this).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from aion.local_tokens import login
from aion.settings import Settings
from api.principal import PLATFORM_ADMIN

ROLES = ("serve", "worker", "projector", "kernel")
UNLIMITED = {
    "AION_RATE_TENANT_PER_S": "1000000",
    "AION_RATE_TENANT_BURST": "1000000",
    "AION_RATE_CALLER_PER_S": "1000000",
    "AION_RATE_CALLER_BURST": "1000000",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, seconds: float = 120, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f} s")


@dataclass
class System:
    settings: Settings
    api: str
    pids: dict[str, int] = field(default_factory=dict)
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def rss_mb(self) -> dict[str, float]:
        """Resident size of each role's process (and its children), MiB."""
        found = {}
        for role, pid in self.pids.items():
            try:
                process = psutil.Process(pid)
                family = [process, *process.children(recursive=True)]
                found[role] = sum(p.memory_info().rss for p in family) / 2**20
            except psutil.NoSuchProcess:
                continue
        return found


def running_roles() -> dict[str, int]:
    """Pids of the Aion role processes already running on this machine (``--api`` mode)."""
    found: dict[str, int] = {}
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmd = process.info["cmdline"] or []
        for role in ROLES:
            if cmd[-3:] == ["-m", "aion", role] or cmd[-2:] == ["aion", role]:
                found.setdefault(role, process.info["pid"])
    return found


def admin_token(settings: Settings) -> str:
    return login(settings, "bench", None, [PLATFORM_ADMIN]).access_token


@contextmanager
def existing(settings: Settings, api: str) -> Iterator[System]:
    token = admin_token(settings)
    wait_for(f"{api}/readyz")
    yield System(settings, api.rstrip("/"), running_roles(), token)


@contextmanager
def started(settings: Settings, logs: Path) -> Iterator[System]:
    """The stack (started if needed) and our own four roles, stopped afterwards."""
    from aion.bootstrap import bootstrap
    from aion.stack.manager import Stack

    Stack(settings).up()
    bootstrap(settings)
    port = free_port()
    env = {
        **os.environ,
        **UNLIMITED,
        "AION_API_PORT": str(port),
        "AION_METRICS_PORT": "0",
        "AION_WORKER_ID": "bench",
    }
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for role in ROLES:
            with (logs / f"{role}.log").open("ab") as log:
                procs[role] = subprocess.Popen(
                    [sys.executable, "-m", "aion", role], env=env, stdout=log, stderr=log
                )
        api = f"http://127.0.0.1:{port}"
        wait_for(f"{api}/readyz")
        yield System(settings, api, {r: p.pid for r, p in procs.items()}, admin_token(settings))
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
