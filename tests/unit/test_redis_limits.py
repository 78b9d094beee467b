"""Redis clients time out and cap their connections (issue 17, finding 14).

The fault is real: a TCP server on a loopback port that accepts connections and never answers,
as a paused Redis or a host behind a packet-dropping firewall does. redis-py's defaults waited
on it forever and opened a connection per waiting caller.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aion.redis_clients import RedisLimits, async_client, sync_client
from aion.settings import Settings
from projections.live import LiveProjection
from projections.runner import Position

FAST = RedisLimits(socket_timeout_s=0.5, connect_timeout_s=0.5, max_connections=3)
HANG_GUARD_S = 60  # far beyond any timeout under test: reaching it means "hung"


class SilentServer:
    """Accepts every connection, reads what it is sent, answers nothing; counts connections
    open at once."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.open = 0
        self.most_open = 0
        self.lock = threading.Lock()
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.open += 1
                self.most_open = max(self.most_open, self.open)
            threading.Thread(target=self._swallow, args=(conn,), daemon=True).start()

    def _swallow(self, conn: socket.socket) -> None:
        with conn:
            while not self.closing:
                try:
                    if not conn.recv(4096):
                        break
                except OSError:
                    break
        with self.lock:
            self.open -= 1

    def close(self) -> None:
        self.closing = True
        self.listener.close()


@pytest.fixture()
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_settings_give_the_clients_their_limits() -> None:
    settings = Settings(
        redis_socket_timeout_s=1.5, redis_connect_timeout_s=0.7, redis_max_connections=9
    )
    limits = RedisLimits.of(settings)
    client = async_client(settings.redis, limits)
    pool: Any = client.connection_pool
    assert pool.max_connections == 9
    assert pool.connection_kwargs["socket_timeout"] == 1.5
    assert pool.connection_kwargs["socket_connect_timeout"] == 0.7
    blocking = sync_client(settings.redis, limits)
    assert blocking.connection_pool.max_connections == 9
    assert blocking.connection_pool.connection_kwargs["socket_timeout"] == 1.5
    blocking.close()
    asyncio.run(client.aclose())


def test_a_silent_redis_times_out_instead_of_hanging(silent: SilentServer) -> None:
    async def run() -> None:
        client = async_client(silent.url, FAST)
        try:
            with pytest.raises(RedisTimeoutError):
                await asyncio.wait_for(client.ping(), HANG_GUARD_S)
        finally:
            await client.aclose()

    asyncio.run(run())


def test_waiting_callers_never_open_more_than_the_cap(silent: SilentServer) -> None:
    """Ten callers at once on a silent Redis: three connections, and every caller fails."""

    async def run() -> list[object]:
        client = async_client(silent.url, FAST)
        try:
            calls = [asyncio.wait_for(client.get(f"k{i}"), HANG_GUARD_S) for i in range(10)]
            return list(await asyncio.gather(*calls, return_exceptions=True))
        finally:
            await client.aclose()

    outcomes = asyncio.run(run())
    assert silent.most_open <= FAST.max_connections
    assert all(isinstance(o, RedisTimeoutError | RedisConnectionError) for o in outcomes), outcomes


def test_the_live_projection_fails_on_a_silent_redis_instead_of_hanging(
    silent: SilentServer,
) -> None:
    """The projector's Redis write raises, so its runner can retry; it used to block the
    projection thread forever."""
    live = LiveProjection(silent.url, FAST)
    envelope = {"tenant_id": "t", "aggregate_version": 1, "occurred_at": datetime.now(UTC)}
    event = {"envelope": envelope, "task_id": "x", "agent_name": "a", "agent_version": "1"}
    raised: list[BaseException] = []

    def apply() -> None:
        try:
            live.apply(None, "aion.task.TaskSubmitted", event, Position("t", 0, 0))  # type: ignore[arg-type]
        except BaseException as exc:  # handed to the test thread
            raised.append(exc)

    worker = threading.Thread(target=apply, daemon=True)
    worker.start()
    worker.join(HANG_GUARD_S)
    assert not worker.is_alive(), "the projection hung on a silent Redis"
    assert len(raised) == 1 and isinstance(raised[0], redis.exceptions.TimeoutError), raised
