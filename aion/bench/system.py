"""The system a benchmark runs against: the local stack and Aion's four process roles.

``aion bench`` starts its own roles on a free API port, with rate limits out of the way (the
load is one tenant and one caller) and metrics ports off; ``--api URL`` measures a system that
is already running (the test suite's smoke run does this). Our own roles join the same consumer
groups as any other Aion process on the stack, so they refuse to start beside one (decision 47).
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
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from aion.bootstrap import bootstrap
from aion.local_tokens import login
from aion.settings import Settings
from aion.stack.manager import Stack
from api.principal import PLATFORM_ADMIN

ROLES = ("serve", "worker", "projector", "kernel")
UNLIMITED = {
    "AION_RATE_TENANT_PER_S": "1000000",
    "AION_RATE_TENANT_BURST": "1000000",
    "AION_RATE_CALLER_PER_S": "1000000",
    "AION_RATE_CALLER_BURST": "1000000",
}
GROUP_PREFIX = "aion"  # every consumer group an Aion role joins starts so
MEMBERS_LEAVE_S = 45.0  # a stopped role's membership ends within its session timeout


class BenchRefused(RuntimeError):
    """The bench cannot start its own roles here; the message says what to do."""


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


def _spawn(role: str, env: dict[str, str], logs: Path, name: str) -> subprocess.Popen[bytes]:
    with (logs / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "aion", role], env=env, stdout=log, stderr=log
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class System:
    settings: Settings
    api: str
    pids: dict[str, int] = field(default_factory=dict)
    token: str = ""
    # The environment and log folder our roles were started with; None when --api.
    env: dict[str, str] | None = None
    logs: Path | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def owns_roles(self) -> bool:
        return self.env is not None

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

    @contextmanager
    def more(self, roles: tuple[str, ...]) -> Iterator[list[int]]:
        """One more process of each of ``roles`` (our own roles only), stopped afterwards;
        waits until the consumer groups count the new members."""
        if self.env is None or self.logs is None:
            raise BenchRefused("more roles can be started only beside the bench's own")
        before = sum(group_members(self.settings).values())
        procs = []
        try:
            for n, role in enumerate(roles, start=2):
                env = {**self.env, "AION_WORKER_ID": f"bench-{role}-{n}"}
                procs.append(_spawn(role, env, self.logs, f"{role}-{n}"))
            wait_members(self.settings, before + len(roles), procs)
            yield [p.pid for p in procs]
        finally:
            _stop(procs)


def group_members(settings: Settings) -> dict[str, int]:
    """Active members of each Aion consumer group on the stack's Kafka (groups no member has
    joined are left out)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka})
    try:
        listed = admin.list_consumer_groups(request_timeout=15).result()
        names = [g.group_id for g in listed.valid if g.group_id.startswith(GROUP_PREFIX)]
        if not names:
            return {}
        described = admin.describe_consumer_groups(names, request_timeout=15)
        found = {name: len(future.result().members) for name, future in described.items()}
    except KafkaException:
        return {}
    return {name: n for name, n in found.items() if n}


def wait_members(
    settings: Settings, count: int, procs: list[subprocess.Popen[bytes]], seconds: float = 120
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a bench role exited while starting: see its log")
        if sum(group_members(settings).values()) >= count:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the consumer groups did not reach {count} members in {seconds:.0f} s")


def running_roles(exclude: frozenset[int] = frozenset()) -> dict[str, list[int]]:
    """Pids of the Aion role processes running on this machine, by role."""
    found: dict[str, list[int]] = {}
    for process in psutil.process_iter(["pid", "cmdline"]):
        pid = process.info["pid"]
        cmd = process.info["cmdline"] or []
        for role in ROLES:
            if pid not in exclude and (
                cmd[-3:] == ["-m", "aion", role] or cmd[-2:] == ["aion", role]
            ):
                found.setdefault(role, []).append(pid)
    return found


def refuse_beside_local() -> None:
    """Raises BenchRefused when Aion roles are running on this machine (``make up``, a test
    run, ``aion worker``): ours would join their consumer groups and share their work."""
    local = running_roles(exclude=frozenset({os.getpid()}))
    if local:
        listed = "; ".join(f"{role} (pid {', '.join(map(str, p))})" for role, p in local.items())
        raise BenchRefused(
            f"other Aion roles are running on this machine: {listed}. aion bench starts its "
            "own API, worker, projector and kernel, which would join their consumer groups "
            "and share their work. Stop `make up` (or the test run) first, or measure the "
            "running system with `aion bench --api URL`."
        )


def refuse_beside_members(settings: Settings, poll_s: float = 1.0) -> None:
    """Raises BenchRefused when the stack's consumer groups have members (roles running
    against this Kafka from elsewhere); members left by roles that just stopped are given
    their session timeout to go."""
    deadline = time.monotonic() + MEMBERS_LEAVE_S
    members = group_members(settings)
    while members and time.monotonic() < deadline:
        time.sleep(poll_s)
        members = group_members(settings)
    if members:
        listed = ", ".join(f"{name} ({n})" for name, n in sorted(members.items()))
        raise BenchRefused(
            f"the stack's consumer groups have active members: {listed}. Aion roles are "
            "running against this Kafka from somewhere else; stop them first, or measure "
            "that system with `aion bench --api URL`."
        )


def admin_token(settings: Settings) -> str:
    return login(settings, "bench", None, [PLATFORM_ADMIN]).access_token


@contextmanager
def existing(settings: Settings, api: str) -> Iterator[System]:
    token = admin_token(settings)
    wait_for(f"{api}/readyz")
    pids = {role: found[0] for role, found in running_roles().items()}
    yield System(settings, api.rstrip("/"), pids, token)


@contextmanager
def started(settings: Settings, logs: Path) -> Iterator[System]:
    """The stack (started if needed) and our own four roles, stopped afterwards; refused
    while other Aion roles run (they would share our consumer groups)."""
    refuse_beside_local()
    Stack(settings).up()
    refuse_beside_members(settings)
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
            procs[role] = _spawn(role, env, logs, role)
        api = f"http://127.0.0.1:{port}"
        wait_for(f"{api}/readyz")
        pids = {r: p.pid for r, p in procs.items()}
        yield System(settings, api, pids, admin_token(settings), env, logs)
    finally:
        _stop(list(procs.values()))
