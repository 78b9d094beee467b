"""What every service of the local stack offers the stack manager."""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from aion.settings import Settings
from aion.stack.process import ManagedProcess, StackError, port_open, tail


@dataclass
class ServiceStatus:
    name: str
    address: str
    mode: str  # "embedded", "external" or "in-process"
    pid: int | None
    healthy: bool
    detail: str = ""


class Service(ABC):
    """A server the stack can install, start, check and stop.

    Subclasses set ``name``, ``port`` and implement ``address``, ``command`` and ``healthy``;
    ``prepare`` installs what is missing, ``after_ready`` does first-use set-up (buckets,
    databases, registry config).
    """

    name: str = ""
    port: int = 0
    ready_timeout: float = 90.0
    stop_signal: int = signal.SIGTERM
    has_process = True  # False for a service that lives inside our own processes

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.stack_dir
        self.data_dir = self.home / "data" / self.name
        self.cache = settings.cache_dir.expanduser().resolve()
        self.process = ManagedProcess(
            self.name, self.home / "run", self.home / "logs", stop_signal=self.stop_signal
        )

    @property
    def external(self) -> bool:
        return self.settings.external()[self.name]

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients reach the service."""

    def prepare(self) -> None:
        """Install or fetch what this service needs (idempotent, cached)."""

    @abstractmethod
    def start(self) -> None:
        """Spawn the embedded server (only called when it is not external)."""

    @abstractmethod
    def healthy(self) -> bool:
        """A cheap real request to the server."""

    def after_ready(self) -> None:
        """First-use set-up once the server answers."""

    def check_port_free(self) -> None:
        if port_open("127.0.0.1", self.port):
            raise StackError(
                f"port {self.port} for {self.name} is already in use by a process this stack did "
                f"not start. Stop it, or point Aion at it with the {self.env_var} variable."
            )

    @property
    def env_var(self) -> str:
        return {
            "kafka": "AION_KAFKA_BOOTSTRAP",
            "registry": "AION_SCHEMA_REGISTRY_URL",
            "postgres": "AION_DATABASE_URL",
            "redis": "AION_REDIS_URL",
            "s3": "AION_S3_ENDPOINT",
            "qdrant": "AION_QDRANT_URL",
            "oidc": "AION_OIDC_ISSUER",
        }[self.name]

    def status(self) -> ServiceStatus:
        mode = "external" if self.external else "embedded"
        pid = None if self.external else self.process.pid()
        try:
            ok = self.healthy()
            detail = ""
        except Exception as exc:  # a health probe reports, it never raises
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        if not ok and not detail and not self.external and pid is None:
            detail = "not running"
        stale = self.process.stale_pid
        if stale is not None and pid is None:
            detail = f"{detail}; removed a stale pid file (process {stale} is gone)".lstrip("; ")
        return ServiceStatus(self.name, self.address, mode, pid, ok, detail)

    def log_tail(self) -> str:
        return tail(self.process.log_file)

    @property
    def log_file(self) -> Path:
        return self.process.log_file
