"""The local stack as a whole: install, start in order, wait until ready, stop, report."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from aion.settings import Settings
from aion.stack.base import Service, ServiceStatus
from aion.stack.kafka import Kafka
from aion.stack.oidc import Oidc
from aion.stack.postgres import Postgres
from aion.stack.process import StackError
from aion.stack.qdrant import Qdrant
from aion.stack.redis import Redis
from aion.stack.registry import Registry
from aion.stack.s3 import S3

Report = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: list[Service] = [
            Postgres(settings),
            Redis(settings),
            S3(settings),
            Kafka(settings),
            Registry(settings),
            Qdrant(settings),
            Oidc(settings),
        ]

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One `up` or `down` at a time per stack home (parallel test runs share a stack)."""
        run = self.settings.stack_dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        with (run / "stack.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def install(self, report: Report = _quiet) -> None:
        """Fetch and build what the embedded services need, without starting them."""
        with self._lock():
            self._install(report)

    def _install(self, report: Report) -> None:
        to_prepare = [s for s in self.services if not s.external and s.process.pid() is None]
        # Downloads and the cargo build are independent: run them side by side.
        with ThreadPoolExecutor(max_workers=4) as pool:
            for service, error in zip(to_prepare, pool.map(_prepare, to_prepare), strict=True):
                if error:
                    raise StackError(f"{service.name}: {error}")
                report(f"{service.name}: installed")

    def up(self, report: Report = _quiet) -> list[ServiceStatus]:
        with self._lock():
            embedded = [s for s in self.services if not s.external]
            self._install(report)
            for service in embedded:
                if service.has_process and service.process.pid() is not None:
                    report(f"{service.name}: already running (pid {service.process.pid()})")
                    continue
                report(f"{service.name}: starting")
                service.start()
            for service in self.services:
                self._wait_ready(service, report)
                service.after_ready()
            return self.status()

    def _wait_ready(self, service: Service, report: Report) -> None:
        deadline = time.monotonic() + service.ready_timeout
        last_error = ""
        while time.monotonic() < deadline:
            try:
                if service.healthy():
                    report(f"{service.name}: ready at {service.address}")
                    return
            except Exception as exc:  # not up yet: keep polling until the deadline
                last_error = f"{type(exc).__name__}: {exc}"
            if not service.external and service.has_process and service.process.pid() is None:
                raise StackError(
                    f"{service.name} exited during start-up. Last lines of {service.log_file}:\n"
                    f"{service.log_tail()}"
                )
            time.sleep(0.25)
        where = (
            f"external {service.name} at {service.address} (set by {service.env_var})"
            if service.external
            else f"{service.name}; last lines of {service.log_file}:\n{service.log_tail()}"
        )
        raise StackError(
            f"{service.name} was not ready within {service.ready_timeout:.0f}s "
            f"({last_error or 'no answer'}): {where}"
        )

    def down(self, report: Report = _quiet) -> list[str]:
        with self._lock():
            stopped = []
            for service in reversed(self.services):
                if not service.external and service.has_process and service.process.stop():
                    report(f"{service.name}: stopped")
                    stopped.append(service.name)
            return stopped

    def status(self) -> list[ServiceStatus]:
        return [s.status() for s in self.services]


def _prepare(service: Service) -> str | None:
    try:
        service.prepare()
    except StackError as exc:
        return str(exc)
    return None
