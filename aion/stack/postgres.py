"""PostgreSQL from Debian's binaries: a private cluster made with initdb, on a private port.

The server refuses to run as root, so when the stack runs as root the cluster belongs to the
``postgres`` system user that Debian's package creates.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
from pathlib import Path

import psycopg

from aion.settings import POSTGRES_PORT
from aion.stack.base import Service
from aion.stack.prerequisites import postgres_bin
from aion.stack.process import StackError, run_checked

DATABASES = ("aion",)


class Postgres(Service):
    name = "postgres"
    port = POSTGRES_PORT
    ready_timeout = 30.0
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for clients to leave

    @property
    def address(self) -> str:
        return self.settings.database

    @property
    def run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise StackError(
                "PostgreSQL cannot run as root and there is no 'postgres' user: "
                "apt-get install -y postgresql creates it."
            ) from exc
        return "postgres"

    def prepare(self) -> None:
        postgres_bin()

    def _own(self, path: Path) -> None:
        if self.run_as:
            shutil.chown(path, self.run_as, self.run_as)

    def start(self) -> None:
        self.check_port_free()
        bindir = postgres_bin()
        cluster = self.data_dir / "cluster"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._own(self.data_dir)
        if not (cluster / "PG_VERSION").exists():
            run_checked(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(cluster),
                    "-U",
                    "aion",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                what="initdb of the local PostgreSQL cluster",
                log=self.log_file,
                user=self.run_as,
                cwd=self.data_dir,
            )
        self.process.spawn(
            [
                str(bindir / "postgres"),
                "-D",
                str(cluster),
                "-p",
                str(POSTGRES_PORT),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.data_dir}",
                "-c",
                "fsync=on",
                "-c",
                "max_connections=200",
            ],
            user=self.run_as,
            cwd=self.data_dir,
        )

    @property
    def admin_url(self) -> str:
        """The maintenance database: it exists before ours is created."""
        return f"postgresql://aion@127.0.0.1:{POSTGRES_PORT}/postgres"

    def healthy(self) -> bool:
        url = self.address if self.external else self.admin_url
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("select 1")
        return True

    def after_ready(self) -> None:
        if self.external:
            return
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in DATABASES:
                exists = conn.execute("select 1 from pg_database where datname = %s", (name,))
                if exists.fetchone() is None:
                    conn.execute(f'create database "{name}"')
