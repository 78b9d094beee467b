"""The orchestrator's clock: asks a tenant's scheduler to act when something is due.

Deadlines, retry backoffs, silent kernel workers and a full rate window need time to pass, not
a new command. Every worker looks at the scheduler documents of its own partitions each
``tick_interval`` and, for a tenant whose ``due_ms`` has come, produces a Tick command keyed by
the tenant. The Tick is then handled like any command, in order, by the partition's single
writer: the timer never changes state itself. A Tick sent twice (a rebalance, a slow partition)
is harmless: the scheduler acts only on what is due at the Tick's time.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aion.metrics import SCHEDULER_TASKS
from schemas.topics import COMMANDS
from streams.app import StreamsApp
from streams.plan import TICK

log = logging.getLogger(__name__)

ASK_AGAIN_SECONDS = 5.0  # a Tick not yet handled is asked for again after this


def due_tenants(items: Any, now_ms: int) -> list[tuple[str, int]]:
    """(tenant, due_ms) for each scheduler document whose due time has come."""
    found = []
    for key, raw in items:
        name = key.decode() if isinstance(key, bytes) else str(key)
        if not raw or not name.startswith("scheduler:"):
            continue
        due = json.loads(raw).get("due_ms")
        if due is not None and int(due) <= now_ms:
            found.append((name.split(":", 1)[1], int(due)))
    return found


PHASES = ("queued", "active", "retrying")


def tasks_by_phase(items: Any) -> dict[str, int]:
    """How many live tasks the scheduler documents count in each phase (queued: the backlog),
    from their counters (each document is small: it holds no list of tasks)."""
    counts = dict.fromkeys(PHASES, 0)
    for key, raw in items:
        name = key.decode() if isinstance(key, bytes) else str(key)
        if not raw or not name.startswith("scheduler:"):
            continue
        state = json.loads(raw).get("state") or {}
        for phase in PHASES:
            counts[phase] += int(state.get(phase, 0))
    return counts


def measure_backlog(items: Any) -> None:
    """Set the backlog gauges from the documents of this worker's partitions (only those: a
    partition that moved away is counted by its new owner)."""
    for phase, count in tasks_by_phase(items).items():
        SCHEDULER_TASKS.labels(phase).set(count)


def should_ask(asked: tuple[float, int] | None, due_ms: int, now: float) -> bool:
    """Whether to send a Tick for a due tenant that was last asked ``asked`` (when, for which
    due time). The same due time asked for a moment ago: that Tick is still on its way. A new
    due time means the last Tick was handled and left more to do (a bounded command's rest)."""
    if asked is None or asked[1] != due_ms:
        return True
    return now - asked[0] >= ASK_AGAIN_SECONDS


def tick_envelope(tenant_id: str, now: datetime) -> dict[str, Any]:
    command_id = str(uuid.uuid4())
    return {
        "command_id": command_id,
        "command_type": TICK,
        "correlation_id": command_id,
        "tenant_id": tenant_id,
        "aggregate_type": "scheduler",
        "aggregate_id": tenant_id,
        "expected_version": None,
        "idempotency_key": None,
        "issued_at": now,
        "actor": "aion-orchestrator",
        "traceparent": None,
        "tracestate": None,
    }


async def ask_due_tenants(streams: StreamsApp) -> int:
    """Send a Tick for every due tenant of this worker's partitions; returns how many."""
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    sent = 0
    documents = list(streams.schedulers.items())
    measure_backlog(documents)
    for tenant_id, due_ms in due_tenants(documents, now_ms):
        if not should_ask(streams.ticked.get(tenant_id), due_ms, time.monotonic()):
            continue
        value = {"envelope": tick_envelope(tenant_id, now), "due_ms": due_ms}
        data = streams.codec.encode(COMMANDS, TICK, value)
        await streams.commands.send(key=tenant_id.encode(), value=data)
        streams.ticked[tenant_id] = (time.monotonic(), due_ms)
        sent += 1
    return sent


def register(streams: StreamsApp) -> None:
    @streams.app.timer(interval=streams.settings.tick_interval)
    async def orchestrator_tick() -> None:
        try:
            await ask_due_tenants(streams)
        except Exception:  # the clock must keep going: log, and try again next interval
            log.exception("orchestrator tick failed")
