"""The task orchestrator: admission and timers of one tenant's tasks. Pure, no I/O.

It decides the task events nobody asks for by command: when a task is scheduled, when a failed
run is retried, when a task succeeds, fails or times out, and when a run whose worker went
silent is given up. Time enters only as a parameter (the command's issued_at), so a command
processed twice decides the same events.

Its state is bounded whatever the tenant does (issue 16; decision 50):

* the tenant's document (``scheduler:<tenant>``): counters of its tasks by status (queued =
  authorized, active = scheduled or running, retrying), the bounds of its queues, the starts
  of first attempts in the last minute as at most 60 per-second counts, and the timer wheel's
  position;
* per agent (``slots:<tenant>/<agent>``): its active runs and the bounds of its parked queue;
* one entry per queued item (``queue:``, ``parked:``, ``eligible:``) and per timer page
  (``commands.timer_wheel``).

Everything about a task itself (its agent, attempt, run, deadline) is in the task's own state
(``commands.task``), and the agent's manifest is read from the agent when a run is dispatched:
no copy per queued task.

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from commands.entries import Entries, Entry, Fifo
from commands.model import Event
from commands.task import (
    AUTHORIZED,
    FAILED,
    RETRY_SCHEDULED,
    RUN_FAILED,
    RUN_STARTED,
    RUN_SUCCEEDED,
    SCHEDULED,
    SUCCEEDED,
    TIMED_OUT,
    TaskState,
)
from commands.timer_wheel import TimerWheel, new_wheel

RATE_WINDOW_MS = 60_000
MAX_BACKOFF_MS = 300_000
DEFAULT_GRACE_MS = 10_000
# Work one command may do, so that no command's plan grows with the backlog; what is left is
# done by the next command or Tick (the document's due time says "now").
MAX_ADMISSIONS = 256
MAX_VISITS = 1024
MAX_TIMER_PAGES = 2

SLOT_HOLDING = frozenset({"scheduled", "running"})
STARTING = ("scheduled", "running")  # the status change of the current run's RunStarted


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


Apply = Callable[[str, Event], None]


class Scheduler:
    """One tenant's orchestrator for the length of one command.

    ``state`` is the tenant document's state (changed in place; the planner stores it),
    ``task`` reads a task's current state by its id, ``manifest`` an agent's current manifest.
    """

    def __init__(
        self,
        tenant_id: str,
        state: dict[str, Any],
        entries: Entries,
        now_ms: int,
        grace_ms: int,
        task: Callable[[str], TaskState],
        manifest: Callable[[str], Mapping[str, Any] | None],
    ) -> None:
        self.tenant_id = tenant_id
        self.state = state
        self.entries = entries
        self.now_ms = now_ms
        self.grace_ms = grace_ms
        self.task = task
        self.manifest = manifest
        self.more = False  # work was left for a later command
        self.changed = False
        self.starting: dict[str, tuple[str, str]] = {}  # task -> (agent, run) started now
        self.wheel = TimerWheel(entries, f"wheel:{tenant_id}", state["wheel"])
        self.queue = Fifo(entries, f"queue:{tenant_id}", state["queue"])
        self.eligible = Fifo(entries, f"eligible:{tenant_id}", state["eligible"])

    # --- per agent ----------------------------------------------------------------------------

    def slots(self, agent: str) -> Entry:
        return Entry(
            self.entries,
            f"slots:{self.tenant_id}/{agent}",
            {"active": 0, "parked": [0, 0], "eligible": False},
        )

    def parked(self, agent: str, slots: Entry) -> Fifo:
        return Fifo(self.entries, f"parked:{self.tenant_id}/{agent}", slots.value["parked"])

    def capacity(self, agent: str, slots: Entry) -> int:
        limit = int(quotas_of(self.manifest(agent)).get("max_concurrency", 1))
        return limit - int(slots.value["active"])

    def _mark_eligible(self, agent: str, slots: Entry) -> None:
        """An agent with parked tasks and a free slot waits for a tenant slot, once."""
        ready = len(self.parked(agent, slots)) and self.capacity(agent, slots) > 0
        if ready and not slots.value["eligible"]:
            self.eligible.push({"agent": agent})
            slots.value["eligible"] = True

    def park(self, agent: str, item: dict[str, Any]) -> None:
        slots = self.slots(agent)
        self.parked(agent, slots).push(item)
        self.state["parked"] += 1
        self._mark_eligible(agent, slots)
        slots.save()
        self.changed = True

    # --- folding the task's events ------------------------------------------------------------

    def _count(self, before: str, after: str, agent: str) -> None:
        """Counters follow the task's status: queued, active (holding a slot), retrying."""
        if before == after:
            return
        for status, counter in (("authorized", "queued"), ("retrying", "retrying")):
            self.state[counter] += (after == status) - (before == status)
        if (before in SLOT_HOLDING) != (after in SLOT_HOLDING):
            delta = 1 if after in SLOT_HOLDING else -1
            slots = self.slots(agent)
            slots.value["active"] = int(slots.value["active"]) + delta
            self.state["active"] += delta
            if delta < 0:
                self._mark_eligible(agent, slots)
            slots.save()
        self.changed = True

    def on_event(self, before: TaskState, after: TaskState, event: Event) -> list[Event]:
        """Fold one of a task's events; the events it calls for at once (for that task)."""
        task_id, agent = str(after.task_id), str(after.agent_name)
        self._count(before.status, after.status, agent)
        p = event.payload
        if event.type == AUTHORIZED and after.status == "authorized":
            self.queue.push({"task_id": task_id, "agent": agent})
            if after.deadline_ms is not None:
                self.wheel.add(int(after.deadline_ms), ["deadline", task_id, 0, self.now_ms])
        elif event.type == SCHEDULED and after.status == "scheduled" and after.attempt == 1:
            self._record_start()
        elif event.type == RUN_STARTED and (before.status, after.status) == STARTING:
            # Set at the end of the command, if the run is still going then: a whole-run
            # report records its start and its outcome in one command.
            self.starting[task_id] = (agent, str(after.run_id))
        elif event.type == RETRY_SCHEDULED and after.status == "retrying":
            if int(p["retry_at_ms"]) <= self.now_ms:
                self.park(agent, {"task_id": task_id, "attempt": after.attempt})
            else:
                self.wheel.add(int(p["retry_at_ms"]), ["retry", task_id, after.attempt, 0])
        current = before.status in SLOT_HOLDING and p.get("run_id") == before.run_id
        if event.type == RUN_SUCCEEDED and current:
            return [Event(SUCCEEDED, {"task_id": task_id, "run_id": p["run_id"]})]
        if event.type == RUN_FAILED and current:
            return [after_failure(self.manifest(agent), task_id, before.attempt, p, self.now_ms)]
        self.changed = self.changed or event.type in (AUTHORIZED, RUN_STARTED, RETRY_SCHEDULED)
        return []

    def _record_start(self) -> None:
        starts = recent_starts(self.state["starts"], self.now_ms)
        second = self.now_ms // 1000
        if starts and starts[-1][0] == second:
            starts[-1][1] += 1
        else:
            starts.append([second, 1])
        self.state["starts"] = starts

    def _rate_full(self, limits: Limits) -> bool:
        recent = recent_starts(self.state["starts"], self.now_ms)
        return sum(n for _, n in recent) >= limits.tasks_per_minute

    # --- what is due --------------------------------------------------------------------------

    def advance(self, limits: Limits, apply: Apply) -> None:
        """Fire due timers, then admit what the limits allow, within one command's budget."""
        self._watch_started_runs()
        timers, more = self.wheel.fire(self.now_ms, MAX_TIMER_PAGES)
        self.more = more
        self.changed = self.changed or bool(timers)
        for kind, task_id, token, since_ms in timers:
            event = self._fired(str(kind), str(task_id), token, int(since_ms))
            if event is not None:
                apply(str(task_id), event)
        if not limits.active:
            return
        admitted = visits = 0
        while self.state["active"] < limits.max_concurrent_tasks:
            if admitted >= MAX_ADMISSIONS or visits >= MAX_VISITS:
                self.more = True
                break
            visits += 1
            step = self._admit_eligible(limits, apply)
            if step is None:
                step = self._admit_queued(limits, apply)
            if step is None:
                break
            admitted += step

    def _watch_started_runs(self) -> None:
        """A watchdog for each run that started in this command and is still running."""
        for task_id, (agent, run_id) in self.starting.items():
            task = self.task(task_id)
            if task.status == "running" and task.run_id == run_id:
                timeout = int(quotas_of(self.manifest(agent)).get("timeout_ms", 30_000))
                watchdog = self.now_ms + timeout + self.grace_ms
                self.wheel.add(watchdog, ["watchdog", task_id, run_id, self.now_ms])
        self.starting.clear()

    def _fired(self, kind: str, task_id: str, token: Any, since_ms: int) -> Event | None:
        task = self.task(task_id)
        if not task.exists or task.terminal:
            return None  # a stale timer: the task ended since
        if kind == "deadline" and task.status != "submitted":
            return Event(TIMED_OUT, {"task_id": task_id})
        if kind == "watchdog" and task.status == "running" and task.run_id == token:
            silent = self.now_ms - since_ms
            failure = {
                "task_id": task_id,
                "run_id": task.run_id,
                "reason": "worker_lost",
                "message": f"no report from the kernel worker for {silent} ms",
                "fuel_used": 0,
                "duration_ms": silent,
            }
            return Event(RUN_FAILED, failure)
        if kind == "retry" and task.status == "retrying" and task.attempt == int(token):
            self.park(str(task.agent_name), {"task_id": task_id, "attempt": task.attempt})
        return None

    def _waiting(self, task_id: str, attempt: int) -> bool:
        """Whether a queued item still stands for its task (else it is dropped)."""
        task = self.task(task_id)
        if attempt == 0:
            return task.status == "authorized"
        return task.status == "retrying" and task.attempt == attempt

    def _admit_eligible(self, limits: Limits, apply: Apply) -> int | None:
        """One step on the eligible agents' queue: 1 admitted, 0 moved on, None blocked."""
        head = self.eligible.peek()
        if head is None:
            return None
        agent = str(head["agent"])
        slots = self.slots(agent)
        parked = self.parked(agent, slots)
        self.changed = True
        if not len(parked) or self.capacity(agent, slots) <= 0:
            self.eligible.pop()
            slots.value["eligible"] = False
            slots.save()
            return 0
        item = parked.peek() or {}
        task_id, attempt = str(item.get("task_id")), int(item.get("attempt", 0))
        if not self._waiting(task_id, attempt):
            parked.pop()
            self.state["parked"] -= 1
            slots.save()
            return 0
        if attempt == 0 and self._rate_full(limits):
            return None
        parked.pop()
        self.state["parked"] -= 1
        slots.save()
        apply(task_id, scheduled_event(task_id, attempt + 1))
        return 1

    def _admit_queued(self, limits: Limits, apply: Apply) -> int | None:
        """One step on the tenant's queue: 1 admitted, 0 dropped or parked, None blocked."""
        item = self.queue.peek()
        if item is None:
            return None
        task_id, agent = str(item.get("task_id")), str(item.get("agent"))
        self.changed = True
        if not self._waiting(task_id, 0):
            self.queue.pop()
            return 0
        slots = self.slots(agent)
        if len(self.parked(agent, slots)) or self.capacity(agent, slots) <= 0:
            self.queue.pop()
            self.park(agent, {"task_id": task_id, "attempt": 0})
            return 0
        if self._rate_full(limits):
            return None
        self.queue.pop()
        apply(task_id, scheduled_event(task_id, 1))
        return 1

    def adopt(self, jobs: Mapping[str, Mapping[str, Any]]) -> None:
        """Take over the live tasks of a document stored before decision 50 (one document
        holding every job): queued ones in their order, slots, retries and deadlines."""
        for task_id, job in sorted(jobs.items(), key=lambda item: int(item[1].get("seq", 0))):
            agent, phase = str(job["agent_name"]), job.get("phase")
            if phase == "queued":
                self.state["queued"] += 1
                self.queue.push({"task_id": task_id, "agent": agent})
            elif phase == "active":
                self.state["active"] += 1
                slots = self.slots(agent)
                slots.value["active"] = int(slots.value["active"]) + 1
                slots.save()
            elif phase == "retrying":
                self.state["retrying"] += 1
                attempt = int(job.get("attempt", 0))
                self.wheel.add(int(job["retry_at_ms"]), ["retry", task_id, attempt, 0])
            if job.get("deadline_ms") is not None:
                self.wheel.add(int(job["deadline_ms"]), ["deadline", task_id, 0, self.now_ms])
        self.changed = True

    def due_ms(self, limits: Limits) -> int | None:
        """When the scheduler may next have something to do without a new event, or None."""
        if self.more:
            return self.now_ms
        times = [t for t in (self.wheel.next_ms(),) if t is not None]
        waiting = self.state["queued"] or self.state["parked"]
        if waiting and limits.active and self._rate_full(limits):
            recent = recent_starts(self.state["starts"], self.now_ms)
            times.append(window_opens_ms(recent, limits.tasks_per_minute))
        return min(times) if times else None

    def prune(self) -> None:
        """Forget starts that left the rate window (keeps the document small)."""
        self.state["starts"] = recent_starts(self.state["starts"], self.now_ms)
