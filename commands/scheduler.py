"""One tenant's admission for the length of one command: the rules of
``commands.orchestration`` applied to its bounded state. Pure, no I/O: it reads and writes
small entries through ``commands.entries.Entries`` (the planner's working set), and applies
what it decides through a callback, so that each decision is folded into the task's job
(``commands.admission``) and seen by the scheduler again before the next is made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from commands.admission import job_key
from commands.entries import Entries, Entry, Fifo
from commands.model import Event
from commands.orchestration import (
    Limits,
    quotas_of,
    recent_starts,
    run_id_for,
    scheduled_event,
    window_opens_ms,
)
from commands.task import (
    AUTHORIZED,
    RETRY_SCHEDULED,
    RUN_FAILED,
    SCHEDULED,
    TIMED_OUT,
    TaskState,
)
from commands.timer_wheel import TimerWheel

# Work one command may do, so that no command's plan grows with the backlog; what is left is
# done by the next command or Tick (the document's due time says "now").
MAX_ADMISSIONS = 256
MAX_VISITS = 1024
MAX_TIMER_PAGES = 2

SLOT_HOLDING = frozenset({"scheduled", "running"})
JOB_STATUS = {"queued": "authorized", "active": "scheduled", "retrying": "retrying"}

Apply = Callable[[str, Event], None]


class Scheduler:
    """One tenant's admission for the length of one command.

    ``state`` is the tenant document's state (changed in place; the planner stores it),
    ``task`` reads a task's job by its id (``commands.admission``), ``manifest`` an agent's
    current manifest.
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

    def on_event(self, before: TaskState, after: TaskState, event: Event) -> None:
        """Fold a change of a task's job: admitted, scheduled, waiting for a retry, ended."""
        task_id, agent = (
            str(after.task_id or before.task_id),
            str(after.agent_name or before.agent_name),
        )
        self._count(before.status, after.status, agent)
        p = event.payload
        if event.type == AUTHORIZED and after.status == "authorized":
            self.queue.push({"task_id": task_id, "agent": agent})
            if after.deadline_ms is not None:
                self.wheel.add(int(after.deadline_ms), ["deadline", task_id, 0, self.now_ms])
        elif event.type == SCHEDULED and after.status == "scheduled" and after.attempt == 1:
            self._record_start()
        elif event.type == RETRY_SCHEDULED and after.status == "retrying":
            if int(p["retry_at_ms"]) <= self.now_ms:
                self.park(agent, {"task_id": task_id, "attempt": after.attempt})
            else:
                self.wheel.add(int(p["retry_at_ms"]), ["retry", task_id, after.attempt, 0])
        self.changed = self.changed or event.type in (AUTHORIZED, RETRY_SCHEDULED)

    def watch(self, task_id: str, run_id: str, until_ms: int) -> None:
        """A watchdog for a run that started and has not reported its end."""
        self.wheel.add(until_ms, ["watchdog", task_id, run_id, self.now_ms])
        self.changed = True

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
        holding every job), or folded from the events: a job entry each (decision 56),
        queued ones in their order, slots, retries and deadlines."""
        for task_id, job in sorted(jobs.items(), key=lambda item: int(item[1].get("seq", 0))):
            agent, phase = str(job["agent_name"]), job.get("phase")
            attempt = int(job.get("attempt") or 0)
            entry = {
                "status": job.get("status") or JOB_STATUS.get(str(phase), "authorized"),
                "agent_name": agent,
                "attempt": attempt,
                "run_id": job.get("run_id") or (run_id_for(task_id, attempt) if attempt else None),
                "deadline_ms": job.get("deadline_ms"),
            }
            self.entries.put(job_key(self.tenant_id, task_id), entry)
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
