"""Redis from Debian's redis-server, on a private port, with an append-only file."""

from __future__ import annotations

import redis

from aion.settings import REDIS_PORT
from aion.stack.base import Service
from aion.stack.prerequisites import which


class Redis(Service):
    name = "redis"
    port = REDIS_PORT
    ready_timeout = 20.0

    @property
    def address(self) -> str:
        return self.settings.redis

    def prepare(self) -> None:
        which("redis-server")

    def start(self) -> None:
        self.check_port_free()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process.spawn(
            [
                str(which("redis-server")),
                "--port",
                str(REDIS_PORT),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ]
        )

    def healthy(self) -> bool:
        client = redis.Redis.from_url(self.address, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
