"""Whether each projection runner is running or retrying, told to the API's ``/readyz``.

A runner that meets a transient error (Postgres, Kafka, Redis or Qdrant gone) retries with
backoff instead of dying (issue 17, finding 13); meanwhile its ``RunnerHealth`` says
``retrying`` with the error. A ``HealthBeacon`` thread in each process that runs projections
(the projector, or the API for the embedded search index) publishes its runners' health to
Redis every ``PUBLISH_EVERY_S`` under ``aion:projection:health:<projection>:<owner>``, expiring
after ``TTL_S``, and lists those keys in the set ``aion:projection:health``. Redis, not
Postgres: the report must get out while Postgres is what fails. ``projection_states`` reads
them back; a stopped or killed process's reports expire with it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.asyncio import Redis as AsyncRedis

from aion.redis_clients import RedisLimits, sync_client

INDEX = "aion:projection:health"
KEY_PREFIX = "aion:projection:health:"
PUBLISH_EVERY_S = 1.0
TTL_S = 10
log = logging.getLogger(__name__)


@dataclass
class RunnerHealth:
    """One runner's state, written by its thread, read by the beacon (plain attributes: a
    torn read shows one field newer than another, never a wrong state)."""

    projection: str
    state: str = "starting"  # starting, running, retrying, stopped
    error: str | None = None
    since: float = field(default_factory=time.time)
    failures: int = 0  # consecutive failed attempts
    dead_letters: int = 0  # events this runner sent to the dead letters

    def running(self) -> None:
        if self.state != "running":
            log.info("projection %s running", self.projection)
            self.state, self.error, self.since, self.failures = "running", None, time.time(), 0

    def retrying(self, error: BaseException) -> None:
        if self.state != "retrying":
            self.state, self.since = "retrying", time.time()
        self.error = f"{type(error).__name__}: {error}"[:500]
        self.failures += 1

    def stopped(self) -> None:
        self.state, self.since = "stopped", time.time()

    def report(self, owner: str) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "owner": owner,
            "state": self.state,
            "error": self.error,
            "since": self.since,
            "failures": self.failures,
            "dead_letters": self.dead_letters,
        }


def owner_name() -> str:
    return f"{os.uname().nodename}-{os.getpid()}"


class HealthBeacon:
    """Publishes some runners' health to Redis on a thread of its own (best effort: Redis down
    is logged, and readiness then shows the projection as unknown)."""

    def __init__(
        self, redis_url: str, limits: RedisLimits, healths: Sequence[RunnerHealth]
    ) -> None:
        self.healths = list(healths)
        self.owner = owner_name()
        self.redis = sync_client(redis_url, limits)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="projection-health", daemon=True)

    def key(self, health: RunnerHealth) -> str:
        return f"{KEY_PREFIX}{health.projection}:{self.owner}"

    def start(self) -> None:
        self.thread.start()

    def publish(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for health in self.healths:
            key = self.key(health)
            pipe.set(key, json.dumps(health.report(self.owner)), ex=TTL_S)
            pipe.sadd(INDEX, key)
        pipe.execute()

    def _run(self) -> None:
        failing = False
        while True:
            try:
                self.publish()
                failing = False
            except redis.RedisError as exc:
                if not failing:
                    log.warning("projection health not published: %s", exc)
                failing = True
            if self.stopping.wait(PUBLISH_EVERY_S):
                return

    def stop(self) -> None:
        """Stop publishing and take this process's reports away (it no longer runs them)."""
        self.stopping.set()
        self.thread.join(timeout=5)
        try:
            keys = [self.key(h) for h in self.healths]
            self.redis.delete(*keys)
            self.redis.srem(INDEX, *keys)
        except redis.RedisError:
            pass  # they expire in TTL_S
        self.redis.close()


def summarize(reports: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """projection -> its state across processes: retrying if any process retries it."""
    order = {"retrying": 0, "starting": 1, "running": 2, "stopped": 3}
    found: dict[str, dict[str, Any]] = {}
    for report in sorted(reports, key=lambda r: order.get(str(r.get("state")), 4)):
        name = str(report.get("projection"))
        entry = found.setdefault(
            name, {"state": report.get("state"), "processes": 0, "dead_letters": 0}
        )
        entry["processes"] += 1
        entry["dead_letters"] += int(report.get("dead_letters") or 0)
        if report.get("state") == "retrying" and "error" not in entry:
            entry["error"] = report.get("error")
            entry["since"] = report.get("since")
            entry["failures"] = report.get("failures")
    return found


async def projection_states(client: AsyncRedis) -> dict[str, dict[str, Any]]:
    """Every projection's state as its runners last published it (expired reports dropped)."""
    keys = sorted(
        k.decode() if isinstance(k, bytes) else str(k) for k in await client.smembers(INDEX)
    )
    if not keys:
        return {}
    values = await client.mget(keys)
    gone = [k for k, v in zip(keys, values, strict=True) if v is None]
    if gone:
        await client.srem(INDEX, *gone)
    return summarize([json.loads(v) for v in values if v is not None])
