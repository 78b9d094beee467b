"""Every Redis client Aion builds: socket timeouts and a capped, blocking connection pool.

redis-py's defaults wait forever and open connections without limit. A Redis that accepts and
never answers (paused, or a host gone behind a firewall that drops packets) then hung every
request that touched it, each one holding a new connection. Here a command that gets no
answer within ``AION_REDIS_SOCKET_TIMEOUT_S`` raises ``redis.exceptions.TimeoutError``; a
connection not made within ``AION_REDIS_CONNECT_TIMEOUT_S`` does too; and at most
``AION_REDIS_MAX_CONNECTIONS`` are open, a caller beyond them waiting up to the socket timeout
for one to come free, then failing with ``ConnectionError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
import redis.asyncio

from aion.settings import Settings


@dataclass(frozen=True)
class RedisLimits:
    """Timeouts (seconds) and pool size of one client. The defaults are the settings'."""

    socket_timeout_s: float = 5.0
    connect_timeout_s: float = 3.0
    max_connections: int = 64

    @classmethod
    def of(cls, settings: Settings) -> RedisLimits:
        return cls(
            socket_timeout_s=settings.redis_socket_timeout_s,
            connect_timeout_s=settings.redis_connect_timeout_s,
            max_connections=settings.redis_max_connections,
        )


def async_client(url: str, limits: RedisLimits) -> redis.asyncio.Redis:
    """An asyncio client that owns its pool (closed by ``aclose``)."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=limits.max_connections,
        timeout=limits.socket_timeout_s,
        socket_timeout=limits.socket_timeout_s,
        socket_connect_timeout=limits.connect_timeout_s,
    )
    return redis.asyncio.Redis.from_pool(pool)


def sync_client(url: str, limits: RedisLimits) -> redis.Redis:
    """A blocking client that owns its pool (closed by ``close``)."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=limits.max_connections,
        timeout=limits.socket_timeout_s,
        socket_timeout=limits.socket_timeout_s,
        socket_connect_timeout=limits.connect_timeout_s,
    )
    return redis.Redis.from_pool(pool)
