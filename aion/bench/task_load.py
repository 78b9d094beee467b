"""Task load through the public API, timed by the read model: the plumbing of scenarios 8-10.

Tasks go in through ``POST .../tasks/batch`` (closed batches) or ``POST .../tasks`` (an open
loop); a watcher on its own Postgres connection asks the ``tasks`` read model every few
milliseconds (50 for closed batches, 20 for the open loop) which of the tasks still awaited
have reached the wanted statuses, and notes when it first saw each. Each look costs Postgres an
index probe per awaited task, so with many awaited it looks less often: at most PROBES_PER_S
probes a second (3,000 awaited every 50 ms took a fifth of a core from the system measured;
now 0.3 s, a resolution far below the minutes such a batch lasts). Nothing here knows how
the worker or the kernel move a task: the read model is the contract (its ``finished_at`` is
the kernel's report time, not when the task became visible, so the watcher's own clock is used
instead).
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
import psycopg

from aion.bench.ingest import WAIT, percentile
from aion.bench.system import System
from kernel.shipped import example_wasm

AGENT = "wasi-echo"
WASI_ECHO = example_wasm("wasi_echo")
PAYLOAD = '{"text": "the quick brown fox jumps over the lazy dog"}'
ENDED = ("succeeded", "failed", "timed_out", "cancelled", "rejected")
BATCH_MAX = 1000  # items per POST .../tasks/batch
PROBES_PER_S = 10_000  # the watcher's index probes a second, at most
STALL_S = 60.0  # no task seen for this long: the rest are reported as unfinished


def deploy_echo(system: System, tenant: str, max_concurrency: int = 1000) -> None:
    """The kernel's WASI echo example, uploaded and deployed as agent ``wasi-echo``."""
    with httpx.Client(base_url=system.api, headers=system.headers, timeout=30) as client:
        uploaded = client.post(
            f"/v1/tenants/{tenant}/modules",
            content=WASI_ECHO,
            headers={"content-type": "application/wasm"},
        )
        uploaded.raise_for_status()
        manifest = {
            "agent_name": AGENT,
            "version": "1.0.0",
            "abi": "wasi_command",
            "entrypoint": "_start",
            "module_digest": "sha256:" + hashlib.sha256(WASI_ECHO).hexdigest(),
            "quotas": {
                "fuel": 10_000_000,
                "memory_mb": 16,
                "timeout_ms": 2000,
                "max_concurrency": max_concurrency,
            },
        }
        deployed = client.post(
            f"/v1/tenants/{tenant}/agents", json={"manifest": manifest}, headers=WAIT
        )
        deployed.raise_for_status()


def suspend(system: System, tenant: str, reason: str) -> None:
    """Suspends a bench tenant whose queued tasks must never run (its queue waits)."""
    answer = httpx.post(
        f"{system.api}/v1/tenants/{tenant}/suspend",
        json={"reason": reason},
        headers={**system.headers, **WAIT},
        timeout=60,
    )
    answer.raise_for_status()


@dataclass
class Trial:
    """When each task was submitted and when the read model first showed it as wanted."""

    submitted: dict[str, float] = field(default_factory=dict)
    seen: dict[str, tuple[float, str]] = field(default_factory=dict)  # id -> (when, status)
    watched_until: float = 0.0  # time.time() when the watcher stopped

    @property
    def succeeded(self) -> list[str]:
        return [t for t, (_, status) in self.seen.items() if status == "succeeded"]

    @property
    def unfinished(self) -> int:
        return len(self.submitted) - len(self.seen)

    @property
    def failed(self) -> int:
        return len(self.seen) - len(self.succeeded)

    def latencies_ms(self) -> list[float]:
        """Submit -> succeeded of each task that succeeded, and of each not seen ended by
        the time the watcher stopped its wait so far (so percentiles are lower bounds then,
        not the flattering figures of the tasks that made it)."""
        done = [(self.seen[t][0] - self.submitted[t]) * 1000 for t in self.succeeded]
        waiting = [
            (self.watched_until - at) * 1000
            for t, at in self.submitted.items()
            if t not in self.seen
        ]
        return done + waiting

    def rate(self) -> float:
        """Tasks succeeded per second, from the first submit to the last task seen."""
        return self._per_s(len(self.succeeded))

    def seen_rate(self) -> float:
        """Tasks seen per second (in whatever status was watched for)."""
        return self._per_s(len(self.seen))

    def _per_s(self, count: int) -> float:
        if not self.seen:
            return 0.0
        span = max(at for at, _ in self.seen.values()) - min(self.submitted.values())
        return count / span if span > 0 else 0.0

    def percentiles(self) -> tuple[float, float, float]:
        """p50, p90, p99 in ms (NaN when nothing was submitted)."""
        values = self.latencies_ms()
        if not values:
            return float("nan"), float("nan"), float("nan")
        return statistics.median(values), percentile(values, 0.9), percentile(values, 0.99)

    def note(self) -> str:
        parts = []
        if self.unfinished:
            parts.append(
                f"{self.unfinished} of {len(self.submitted)} not seen ended in time"
                " (their latencies count as the wait so far: lower bounds)"
            )
        if self.failed:
            parts.append(f"{self.failed} ended otherwise than succeeded")
        return "; ".join(parts)


async def watch(
    system: System,
    tenant: str,
    trial: Trial,
    statuses: Iterable[str] | None,
    sending: asyncio.Event,
    deadline: float,
    interval: float = 0.05,
) -> None:
    """Notes when each submitted task first shows one of ``statuses`` in the read model (any
    status past "submitted" when None), until all have or ``deadline`` (monotonic) passes, or
    nothing new is seen for STALL_S after the last submit."""
    wanted = list(statuses) if statuses is not None else None
    last_news = time.monotonic()
    try:
        await _watch(system, tenant, trial, wanted, sending, deadline, interval, last_news)
    finally:
        trial.watched_until = time.time()


async def _watch(
    system: System,
    tenant: str,
    trial: Trial,
    wanted: list[str] | None,
    sending: asyncio.Event,
    deadline: float,
    interval: float,
    last_news: float,
) -> None:
    async with await psycopg.AsyncConnection.connect(
        system.settings.database, autocommit=True
    ) as conn:
        while time.monotonic() < deadline:
            waiting = [t for t in trial.submitted if t not in trial.seen]
            if sending.is_set() and not waiting:
                return
            if waiting:
                now = time.time()  # a row this query finds was there by now
                if wanted is None:
                    cur = await conn.execute(
                        "select task_id, status from tasks where tenant_id = %s"
                        " and task_id = any(%s) and status <> 'submitted'",
                        (tenant, waiting),
                    )
                else:
                    cur = await conn.execute(
                        "select task_id, status from tasks where tenant_id = %s"
                        " and task_id = any(%s) and status = any(%s)",
                        (tenant, waiting, wanted),
                    )
                rows = await cur.fetchall()
                for task_id, status in rows:
                    trial.seen[task_id] = (now, status)
                if rows:
                    last_news = time.monotonic()
            if sending.is_set() and time.monotonic() - last_news > STALL_S:
                return
            await asyncio.sleep(max(interval, len(waiting) / PROBES_PER_S))


def _item(task_id: str) -> dict[str, str]:
    return {"task_id": task_id, "agent_name": AGENT, "input": PAYLOAD}


async def _post_batches(
    client: httpx.AsyncClient, tenant: str, ids: list[str], trial: Trial
) -> None:
    for start in range(0, len(ids), BATCH_MAX):
        chunk = ids[start : start + BATCH_MAX]
        sent = time.time()
        answer = await client.post(
            f"/v1/tenants/{tenant}/tasks/batch", json={"tasks": [_item(t) for t in chunk]}
        )
        answer.raise_for_status()
        for item in answer.json()["items"]:
            if item["status"] == 202:
                trial.submitted[item["task_id"]] = sent


async def _closed(
    system: System, tenant: str, ids: list[str], statuses: Iterable[str] | None, wait_s: float
) -> Trial:
    trial = Trial()
    sending = asyncio.Event()
    watcher = asyncio.create_task(
        watch(system, tenant, trial, statuses, sending, time.monotonic() + wait_s)
    )
    async with httpx.AsyncClient(base_url=system.api, headers=system.headers, timeout=60) as c:
        await _post_batches(c, tenant, ids, trial)
    sending.set()
    await watcher
    return trial


def closed_batch(
    system: System,
    tenant: str,
    ids: list[str],
    statuses: Iterable[str] | None = ENDED,
    wait_s: float = 600,
) -> Trial:
    """All of ``ids`` submitted at once (batches of BATCH_MAX), watched until they show one
    of ``statuses`` (ended, by default) or ``wait_s`` passes."""
    return asyncio.run(_closed(system, tenant, ids, statuses, wait_s))


async def _open(
    system: System, tenant: str, run: str, rate: float, seconds: float, wait_s: float
) -> Trial:
    trial = Trial()
    sending = asyncio.Event()
    watcher = asyncio.create_task(
        watch(system, tenant, trial, ENDED, sending, time.monotonic() + seconds + wait_s, 0.02)
    )
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        base_url=system.api, headers=system.headers, timeout=30, limits=limits
    ) as client:

        async def send(task_id: str) -> None:
            sent = time.time()
            answer = await client.post(f"/v1/tenants/{tenant}/tasks", json=_item(task_id))
            if answer.status_code == 202:
                trial.submitted[task_id] = sent

        started = time.monotonic()
        pending = []
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            pending.append(asyncio.create_task(send(f"{run}-{n}")))
        await asyncio.gather(*pending)
    sending.set()
    await watcher
    return trial


def open_loop(
    system: System, tenant: str, run: str, rate: float, seconds: float, wait_s: float
) -> Trial:
    """Tasks submitted one by one at ``rate`` per second for ``seconds`` (whatever the system
    does meanwhile), each timed from its POST to its success in the read model."""
    return asyncio.run(_open(system, tenant, run, rate, seconds, wait_s))
