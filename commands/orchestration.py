"""The task orchestrator: admission and timers of one tenant's tasks. Pure, no I/O.

It decides the task events nobody asks for by command: when a task is scheduled, when a failed
run is retried, when a task succeeds, fails or times out, and when a run whose worker went
silent is given up. Time enters only as a parameter (the command's issued_at), so a command
processed twice decides the same events. Since decision 56 the rules run in two places:
admission (slots, queues, timers) on the tenant's partition (``commands.scheduler`` over
``commands.admission``'s jobs), a task's outcome on the task's own (``streams.task_stage``).

Its state is bounded whatever the tenant does (issue 16; decision 50):

* the tenant's document (``scheduler:<tenant>``): counters of its tasks by status (queued =
  authorized, active = scheduled or running, retrying), the bounds of its queues, the starts
  of first attempts in the last minute as at most 60 per-second counts, and the timer wheel's
  position;
* per agent (``slots:<tenant>/<agent>``): its active runs and the bounds of its parked queue;
* one entry per queued item (``queue:``, ``parked:``, ``eligible:``) and per timer page
  (``commands.timer_wheel``).

The ``Scheduler`` (``commands.scheduler``) applies these rules for one command. Admission
knows of a task only its job (status, agent, attempt, run, deadline); its input is in the
task's own state (``commands.task``), and the agent's manifest is read from the agent when a
run is dispatched: no copy per queued task.

Rules:

* Admission is first come, first served, within the tenant's ``max_concurrent_tasks`` and
  ``tasks_per_minute`` (first attempts in a sliding minute, counted per second; retries do not
  count) and each agent's ``max_concurrency``. A task whose agent is full, or whose agent has
  tasks parked before it, is parked in its agent's queue, so it does not block others behind
  it; an agent with parked tasks and a free slot waits in the ``eligible`` queue, which goes
  before the tenant's queue (its tasks are older). A suspended tenant's queue waits.
* A task occupies a slot while it is scheduled or running.
* A failed run is retried while attempts stay within ``max_retries``, after
  ``retry_backoff_ms`` doubled per further attempt (capped at five minutes); a due retry is
  parked in its agent's queue, ahead of the tenant's queue.
* A run that started and has not reported within its ``timeout_ms`` plus a grace period is
  failed as ``worker_lost`` (its kernel worker died), then retried like any failure.
* A task past its ``deadline_ms`` times out, whatever it was doing.
* Queues and timers are cleaned lazily: an entry whose task ended or moved on is dropped when
  it reaches the front (one read), so an ending never searches a queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from commands.model import Event
from commands.task import FAILED, RETRY_SCHEDULED, SCHEDULED
from commands.timer_wheel import new_wheel

RATE_WINDOW_MS = 60_000
MAX_BACKOFF_MS = 300_000
DEFAULT_GRACE_MS = 10_000


@dataclass(frozen=True)
class Limits:
    """What the orchestrator needs of its tenant (from the tenant aggregate's summary)."""

    max_concurrent_tasks: int = 10
    tasks_per_minute: int = 600
    active: bool = True  # a suspended tenant's queue waits

    @classmethod
    def of(cls, tenant: Mapping[str, Any] | None) -> Limits:
        tenant = tenant or {}
        limits = tenant.get("limits") or {}
        return cls(
            max_concurrent_tasks=int(limits.get("max_concurrent_tasks", cls.max_concurrent_tasks)),
            tasks_per_minute=int(limits.get("tasks_per_minute", cls.tasks_per_minute)),
            active=tenant.get("status", "active") == "active",
        )


def new_scheduler() -> dict[str, Any]:
    """The tenant document's initial state."""
    return {
        "queued": 0,
        "active": 0,
        "retrying": 0,
        "parked": 0,
        "queue": [0, 0],
        "eligible": [0, 0],
        "starts": [],
        "wheel": new_wheel(),
    }


def run_id_for(task_id: str, attempt: int) -> str:
    return f"{task_id}.{attempt}"


def quotas_of(manifest: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (manifest or {}).get("quotas") or {}


def backoff_ms(manifest: Mapping[str, Any] | None, failed_attempt: int) -> int:
    base = int(quotas_of(manifest).get("retry_backoff_ms", 1000))
    return int(min(base * 2 ** max(failed_attempt - 1, 0), MAX_BACKOFF_MS))


def after_failure(
    manifest: Mapping[str, Any] | None,
    task_id: str,
    attempt: int,
    failure: Mapping[str, Any],
    now_ms: int,
) -> Event:
    """A retry, or the task's failure, after its current run failed."""
    message = failure.get("message") or ""
    reason = f"{failure['reason']}: {message}" if message else str(failure["reason"])
    if attempt <= int(quotas_of(manifest).get("max_retries", 0)):
        return Event(
            RETRY_SCHEDULED,
            {
                "task_id": task_id,
                "run_id": failure["run_id"],
                "next_attempt": attempt + 1,
                "retry_at_ms": now_ms + backoff_ms(manifest, attempt),
                "reason": reason,
            },
        )
    tried = f"after {attempt} attempts" if attempt > 1 else "after 1 attempt"
    return Event(FAILED, {"task_id": task_id, "reason": f"{reason} ({tried})"})


def scheduled_event(task_id: str, attempt: int) -> Event:
    payload = {
        "task_id": task_id,
        "run_id": run_id_for(task_id, attempt),
        "attempt": attempt,
        "dispatch_partition": None,
    }
    return Event(SCHEDULED, payload)


def recent_starts(starts: list[list[int]], now_ms: int) -> list[list[int]]:
    """The per-second start counts still inside the sliding minute at ``now_ms``."""
    return [[s, n] for s, n in starts if s * 1000 + 999 > now_ms - RATE_WINDOW_MS]


def window_opens_ms(starts: list[list[int]], limit: int) -> int:
    """When enough starts have left the window for one more (``starts`` is full)."""
    total = sum(n for _, n in starts)
    for second, count in sorted(starts):
        total -= count
        if total < limit:
            return second * 1000 + 999 + RATE_WINDOW_MS
    return 0
