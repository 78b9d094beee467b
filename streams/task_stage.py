"""The task stage: what a command on aion.tasks (keyed by task) does to the write side.

Each task has its own writer here, so one tenant's tasks spread over every worker (decision
56). The stage decides SubmitTask (the input, its schema, the Cedar verdict, against the facts
replicated to its partition: ``streams.facts``), CancelTask and the kernel workers' run
reports, and records what admission decided (ScheduleRun, AbortTask). It reacts to its own
events as the orchestrator's rules say (``commands.orchestration``): a successful run ends the
task, a failed one is retried or fails it. It tells admission, on the tenant's partition of
aion.commands, what admission needs to know: AdmitTask, WatchRun, SettleTask.

State documents: ``task:<tenant>/<task>`` (the task, with its input for every attempt) and the
replicated ``fact:<type>:<id>``.
"""

from __future__ import annotations

from typing import Any

from commands import admission, orchestration
from commands.aggregate import Aggregate
from commands.aggregates import AGGREGATES
from commands.model import Command, Event, scoped_id
from commands.orchestration import after_failure, quotas_of, scheduled_event
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
from schemas.topics import COMMANDS, DISPATCH
from streams import facts
from streams.plan import Plan, Read, Working, state_key

DISPATCH_RUN = "aion.kernel.DispatchRun"
SLOT_HOLDING = frozenset({"scheduled", "running"})
TASK = AGGREGATES["task"]


class TaskWork(Working):
    """One command of the task stage."""

    replicas = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.started: dict[str, str] = {}  # task aggregate id -> the run that started now

    def agent_summary(self, agent_name: str) -> dict[str, Any]:
        return self.replica("agent", scoped_id(self.tenant_id, agent_name)) or {}

    def manifest(self, agent_name: str) -> dict[str, Any] | None:
        manifest: dict[str, Any] | None = self.agent_summary(agent_name).get("manifest")
        return manifest

    # --- to admission ---------------------------------------------------------------------

    def to_admission(self, record: str, body: dict[str, Any], purpose: str) -> None:
        tenant = self.tenant_id
        self.request(COMMANDS, tenant, record, ("scheduler", tenant), body, purpose)

    def settle(self, task_id: str, attempt: int, outcome: str, retry_at_ms: int | None) -> None:
        body = {
            "task_id": task_id,
            "attempt": attempt,
            "outcome": outcome,
            "retry_at_ms": retry_at_ms,
        }
        self.to_admission(admission.SETTLE, body, f"settle/{task_id}/{attempt}/{outcome}")

    # --- reactions ------------------------------------------------------------------------

    def on_applied(
        self, aggregate: Aggregate, aggregate_id: str, event: Event, before: Any, after: Any
    ) -> None:
        if aggregate.name != "task":
            return
        task_id, agent, p = str(after.task_id), str(after.agent_name), event.payload
        if event.type == AUTHORIZED and after.status == "authorized":
            body = {"task_id": task_id, "agent_name": agent, "deadline_ms": after.deadline_ms}
            self.to_admission(admission.ADMIT, body, f"admit/{task_id}")
        elif event.type == SCHEDULED and after.status == "scheduled":
            self.dispatch(aggregate_id, event, after)
        elif event.type == RUN_STARTED and (before.status, after.status) == (
            "scheduled",
            "running",
        ):
            self.started[aggregate_id] = str(after.run_id)
        current = before.status in SLOT_HOLDING and p.get("run_id") == before.run_id
        if event.type == RUN_SUCCEEDED and current:
            self.apply(TASK, aggregate_id, Event(SUCCEEDED, {"task_id": task_id, **run(p)}))
        elif event.type == RUN_FAILED and current:
            failed = after_failure(self.manifest(agent), task_id, before.attempt, p, self.now_ms)
            self.apply(TASK, aggregate_id, failed)
        elif event.type == RETRY_SCHEDULED and after.status == "retrying":
            self.settle(task_id, before.attempt, admission.RETRY, int(p["retry_at_ms"]))
        elif after.terminal and not before.terminal and before.status in admission.ADMITTED:
            self.settle(task_id, before.attempt, admission.ENDED, None)

    def dispatch(self, aggregate_id: str, event: Event, task: TaskState) -> None:
        """The run's dispatch, with the agent's manifest as replicated now."""
        agent = self.agent_summary(str(task.agent_name))
        run_id = str(event.payload["run_id"])
        self.emit(
            DISPATCH,
            scoped_id(self.tenant_id, run_id),
            DISPATCH_RUN,
            self.envelope("task", aggregate_id, task.version, DISPATCH_RUN),
            {
                "tenant_id": self.tenant_id,
                "task_id": task.task_id,
                "run_id": run_id,
                "attempt": int(event.payload["attempt"]),
                "agent_version": str(agent.get("agent_version") or task.agent_version),
                "manifest": agent.get("manifest") or {},
                "input": task.input,
                "deadline_ms": task.deadline_ms,
                "scheduled_at_ms": self.now_ms,
            },
        )

    def watch_started_runs(self) -> None:
        """Admission watches each run that started in this command and is still going."""
        for aggregate_id, run_id in self.started.items():
            task = self.state(TASK, aggregate_id)
            if task.status != "running" or task.run_id != run_id:
                continue
            timeout = int(quotas_of(self.manifest(str(task.agent_name))).get("timeout_ms", 30_000))
            body = {
                "task_id": str(task.task_id),
                "run_id": run_id,
                "attempt": task.attempt,
                "watch_until_ms": self.now_ms + timeout + self.grace_ms,
            }
            self.to_admission(admission.WATCH, body, f"watch/{run_id}")

    # --- admission's answers --------------------------------------------------------------

    def schedule(self, aggregate_id: str, payload: dict[str, Any]) -> None:
        task = self.state(TASK, aggregate_id)
        attempt = int(payload["attempt"])
        if not task.exists:
            return
        if task.terminal:  # it ended while it waited: admission frees the slot it just gave
            self.settle(str(task.task_id), attempt, admission.ENDED, None)
            return
        first = task.status == "authorized" and attempt == 1
        again = task.status == "retrying" and attempt == task.attempt + 1
        if first or again:
            self.apply(TASK, aggregate_id, scheduled_event(str(task.task_id), attempt))

    def abort(self, aggregate_id: str, payload: dict[str, Any]) -> None:
        task = self.state(TASK, aggregate_id)
        if not task.exists:
            return
        task_id, cause = str(task.task_id), str(payload["cause"])
        if task.terminal:  # ended meanwhile: admission forgets it (again, harmlessly)
            self.settle(task_id, task.attempt, admission.ENDED, None)
        elif cause == admission.DEADLINE and task.status != "submitted":
            self.apply(TASK, aggregate_id, Event(TIMED_OUT, {"task_id": task_id}))
        elif cause == admission.RUN_LOST and task.status == "running":
            if task.run_id == payload.get("run_id"):
                self.apply(TASK, aggregate_id, run_lost(task, str(payload["message"])))
        elif cause == admission.AGENT_UNAVAILABLE:
            reason = str(payload["message"])
            self.apply(TASK, aggregate_id, Event(FAILED, {"task_id": task_id, "reason": reason}))


def run(payload: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": payload["run_id"]}


def run_lost(task: TaskState, message: str) -> Event:
    """The run's worker went silent (admission's watchdog): failed as worker_lost."""
    return Event(
        RUN_FAILED,
        {
            "task_id": task.task_id,
            "run_id": task.run_id,
            "reason": "worker_lost",
            "message": message,
            "fuel_used": 0,
            "duration_ms": 0,
        },
    )


def plan_task_command(
    command: Command,
    read: Read,
    facts_given: dict[tuple[str, str], Any] | None = None,
    grace_ms: int = orchestration.DEFAULT_GRACE_MS,
) -> Plan:
    """Everything a command on aion.tasks leads to. Raises KeyError for a command no aggregate
    handles."""
    work = TaskWork(command, read, facts_given or {}, grace_ms)
    if command.type == admission.REPLICATE_FACT:
        facts.store(work, dict(command.payload))
        return work.finish(None)
    aggregate_id = str(command.envelope["aggregate_id"])
    primary_key = state_key(TASK.name, aggregate_id)
    if work.duplicate(primary_key):
        return Plan(duplicate=True)
    if command.type == admission.SCHEDULE_RUN:
        work.schedule(aggregate_id, dict(command.payload))
    elif command.type == admission.ABORT:
        work.abort(aggregate_id, dict(command.payload))
    elif command.type in TASK.commands:
        work.decide(TASK, aggregate_id)
    else:
        raise KeyError(command.type)
    work.watch_started_runs()
    return work.finish(primary_key)
