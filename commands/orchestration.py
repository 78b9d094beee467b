"""The task orchestrator: a process manager over one tenant's task events. Pure, no I/O.

It keeps a small state per tenant (the live tasks it is responsible for) and decides the task
events nobody asks for by command: when a task is scheduled, when a failed run is retried,
when a task succeeds, fails or times out, and when a run whose worker went silent is given up.

Its state is derived: it is a fold of the tenant's task events (``on_event``), so it could be
rebuilt from ``aion.events.task``. Time enters only as a parameter (the command's issued_at),
so a command processed twice decides the same events.

Rules:

* Admission is first come, first served, within the tenant's ``max_concurrent_tasks`` and
  ``tasks_per_minute`` (a sliding minute of first attempts; retries do not count) and each
  agent's ``max_concurrency``. A task whose agent is full does not block others behind it.
  A suspended tenant's queue waits.
* A task occupies a slot from TaskScheduled until its run ends or the task ends.
* A failed run is retried while attempts stay within ``max_retries``, after
  ``retry_backoff_ms`` doubled per further attempt (capped at five minutes).
* A run that started and has not reported within its ``timeout_ms`` plus a grace period is
  failed as ``worker_lost`` (its kernel worker died), then retried like any failure.
* A task past its ``deadline_ms`` times out, whatever it was doing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from commands.model import Event

TASK_AUTHORIZED = "aion.task.TaskAuthorized"
TASK_SCHEDULED = "aion.task.TaskScheduled"
TASK_RETRY_SCHEDULED = "aion.task.TaskRetryScheduled"
TASK_SUCCEEDED = "aion.task.TaskSucceeded"
TASK_FAILED = "aion.task.TaskFailed"
TASK_TIMED_OUT = "aion.task.TaskTimedOut"
TASK_REJECTED = "aion.task.TaskRejected"
TASK_CANCELLED = "aion.task.TaskCancelled"
RUN_STARTED = "aion.run.RunStarted"
RUN_SUCCEEDED = "aion.run.RunSucceeded"
RUN_FAILED = "aion.run.RunFailed"

ENDINGS = frozenset({TASK_SUCCEEDED, TASK_FAILED, TASK_TIMED_OUT, TASK_REJECTED, TASK_CANCELLED})

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


@dataclass(frozen=True)
class SchedulerState:
    """The live tasks of one tenant.

    ``jobs`` maps a task id to its job: ``phase`` (queued, active or retrying), ``seq`` (its
    place in the queue), the agent snapshot taken at authorization (``agent_name``,
    ``agent_version``, ``manifest``), ``deadline_ms``, and for the current attempt
    ``attempt``, ``run_id``, ``since_ms`` (scheduled, then started), ``started`` and
    ``retry_at_ms``. ``starts`` holds the times of first attempts within the rate window.
    """

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: int = 0
    starts: tuple[int, ...] = ()

    def dump(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "seq": self.seq, "starts": list(self.starts)}

    @classmethod
    def load(cls, document: Mapping[str, Any] | None) -> SchedulerState:
        if not document:
            return cls()
        return cls(
            jobs={k: dict(v) for k, v in document.get("jobs", {}).items()},
            seq=int(document.get("seq", 0)),
            starts=tuple(document.get("starts", ())),
        )

    def count(self, phase: str, agent_name: str | None = None) -> int:
        return sum(
            1
            for job in self.jobs.values()
            if job["phase"] == phase and agent_name in (None, job["agent_name"])
        )


def run_id_for(task_id: str, attempt: int) -> str:
    return f"{task_id}.{attempt}"


def backoff_ms(manifest: Mapping[str, Any], failed_attempt: int) -> int:
    base = int(manifest["quotas"].get("retry_backoff_ms", 1000))
    return int(min(base * 2 ** max(failed_attempt - 1, 0), MAX_BACKOFF_MS))


def _with_job(state: SchedulerState, task_id: str, **changes: Any) -> SchedulerState:
    jobs = dict(state.jobs)
    jobs[task_id] = {**jobs[task_id], **changes}
    return replace(state, jobs=jobs)


def admit(
    state: SchedulerState,
    task_id: str,
    agent_name: str,
    agent_version: str,
    manifest: Mapping[str, Any],
    deadline_ms: int | None,
) -> SchedulerState:
    """A task was authorized: it joins the queue with a snapshot of the agent it runs."""
    if task_id in state.jobs:
        return state
    jobs = dict(state.jobs)
    jobs[task_id] = {
        "phase": "queued",
        "seq": state.seq + 1,
        "agent_name": agent_name,
        "agent_version": agent_version,
        "manifest": copy.deepcopy(dict(manifest)),
        "deadline_ms": deadline_ms,
        "attempt": 0,
        "run_id": None,
        "since_ms": None,
        "started": False,
        "retry_at_ms": None,
    }
    return replace(state, jobs=jobs, seq=state.seq + 1)


def on_event(
    state: SchedulerState, task_id: str, event: Event, now_ms: int
) -> tuple[SchedulerState, list[Event]]:
    """Fold one event of a task, and the events it calls for at once (for that task)."""
    job = state.jobs.get(task_id)
    if job is None:
        return state, []
    p = event.payload
    if event.type in ENDINGS:
        jobs = dict(state.jobs)
        del jobs[task_id]
        return replace(state, jobs=jobs), []
    if event.type == TASK_SCHEDULED:
        attempt = int(p["attempt"])
        starts = state.starts + ((now_ms,) if attempt == 1 else ())
        state = replace(state, starts=starts)
        changes = {"phase": "active", "attempt": attempt, "run_id": p["run_id"]}
        return _with_job(state, task_id, **changes, since_ms=now_ms, started=False), []
    if event.type == TASK_RETRY_SCHEDULED:
        return _with_job(state, task_id, phase="retrying", retry_at_ms=p["retry_at_ms"]), []
    current = job["phase"] == "active" and p.get("run_id") == job["run_id"]
    if not current:
        return state, []  # a late report of an earlier attempt, or not about runs
    if event.type == RUN_STARTED:
        return _with_job(state, task_id, started=True, since_ms=now_ms), []
    if event.type == RUN_SUCCEEDED:
        return state, [Event(TASK_SUCCEEDED, {"task_id": task_id, "run_id": p["run_id"]})]
    if event.type == RUN_FAILED:
        return state, [_after_failure(job, task_id, p, now_ms)]
    return state, []


def _after_failure(
    job: Mapping[str, Any], task_id: str, failure: Mapping[str, Any], now_ms: int
) -> Event:
    attempt = int(job["attempt"])
    manifest = job["manifest"]
    message = failure.get("message") or ""
    reason = f"{failure['reason']}: {message}" if message else str(failure["reason"])
    if attempt <= int(manifest["quotas"].get("max_retries", 0)):
        return Event(
            TASK_RETRY_SCHEDULED,
            {
                "task_id": task_id,
                "run_id": failure["run_id"],
                "next_attempt": attempt + 1,
                "retry_at_ms": now_ms + backoff_ms(manifest, attempt),
                "reason": reason,
            },
        )
    tried = f"after {attempt} attempts" if attempt > 1 else "after 1 attempt"
    return Event(TASK_FAILED, {"task_id": task_id, "reason": f"{reason} ({tried})"})


def _watchdog_ms(job: Mapping[str, Any], grace_ms: int) -> int:
    return int(job["since_ms"]) + int(job["manifest"]["quotas"]["timeout_ms"]) + grace_ms


def advance(
    state: SchedulerState, now_ms: int, limits: Limits, grace_ms: int = DEFAULT_GRACE_MS
) -> list[tuple[str, Event]]:
    """What is due at ``now_ms``: deadlines, silent workers, then admissions, in that order."""
    due: list[tuple[str, Event]] = []
    ended: set[str] = set()
    for task_id, job in sorted(state.jobs.items(), key=lambda item: item[1]["seq"]):
        deadline = job["deadline_ms"]
        if deadline is not None and deadline <= now_ms:
            due.append((task_id, Event(TASK_TIMED_OUT, {"task_id": task_id})))
            ended.add(task_id)
        elif job["phase"] == "active" and job["started"] and _watchdog_ms(job, grace_ms) <= now_ms:
            silent = now_ms - int(job["since_ms"])
            failure = {
                "task_id": task_id,
                "run_id": job["run_id"],
                "reason": "worker_lost",
                "message": f"no report from the kernel worker for {silent} ms",
                "fuel_used": 0,
                "duration_ms": silent,
            }
            due.append((task_id, Event(RUN_FAILED, failure)))
            ended.add(task_id)
    if ended or not limits.active:
        return due  # the next round admits, with the slots these free
    return due + _admissions(state, now_ms, limits)


def _admissions(state: SchedulerState, now_ms: int, limits: Limits) -> list[tuple[str, Event]]:
    active = state.count("active")
    per_agent: dict[str, int] = {}
    for job in state.jobs.values():
        if job["phase"] == "active":
            per_agent[job["agent_name"]] = per_agent.get(job["agent_name"], 0) + 1
    recent = sum(1 for t in state.starts if t > now_ms - RATE_WINDOW_MS)
    # Retries that are due go first (they were admitted before anything still queued).
    candidates = sorted(
        (
            (0 if job["phase"] == "retrying" else 1, job["seq"], task_id, job)
            for task_id, job in state.jobs.items()
            if job["phase"] == "queued"
            or (job["phase"] == "retrying" and int(job["retry_at_ms"]) <= now_ms)
        ),
    )
    scheduled: list[tuple[str, Event]] = []
    for _, _, task_id, job in candidates:
        if active >= limits.max_concurrent_tasks:
            break
        agent_name = job["agent_name"]
        if per_agent.get(agent_name, 0) >= int(job["manifest"]["quotas"]["max_concurrency"]):
            continue
        first = job["phase"] == "queued"
        if first and recent >= limits.tasks_per_minute:
            continue
        attempt = int(job["attempt"]) + 1
        payload = {
            "task_id": task_id,
            "run_id": run_id_for(task_id, attempt),
            "attempt": attempt,
            "dispatch_partition": None,
        }
        scheduled.append((task_id, Event(TASK_SCHEDULED, payload)))
        active += 1
        per_agent[agent_name] = per_agent.get(agent_name, 0) + 1
        recent += 1 if first else 0
    return scheduled


def next_due(
    state: SchedulerState, limits: Limits, now_ms: int, grace_ms: int = DEFAULT_GRACE_MS
) -> int | None:
    """When ``advance`` may next have something to do without any new event, or None.

    Called right after ``advance`` ran at ``now_ms``: what was due then and is still there is
    waiting for an event (a slot to free, the tenant to be reinstated), not for time.
    """
    times: list[int] = []
    for job in state.jobs.values():
        if job["deadline_ms"] is not None:
            times.append(int(job["deadline_ms"]))
        if job["phase"] == "active" and job["started"]:
            times.append(_watchdog_ms(job, grace_ms))
        if job["phase"] == "retrying":
            times.append(int(job["retry_at_ms"]))
    window = sorted(t for t in state.starts if t > now_ms - RATE_WINDOW_MS)
    if state.count("queued") and 0 < limits.tasks_per_minute <= len(window):
        # The rate window is full: the oldest start leaving it opens a place.
        times.append(window[-limits.tasks_per_minute] + RATE_WINDOW_MS)
    later = [t for t in times if t > now_ms]
    return min(later) if later else None


def prune(state: SchedulerState, now_ms: int) -> SchedulerState:
    """Forget starts that left the rate window (keeps the stored document small)."""
    kept = tuple(t for t in state.starts if t > now_ms - RATE_WINDOW_MS)
    return state if kept == state.starts else replace(state, starts=kept)
