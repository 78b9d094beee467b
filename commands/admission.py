"""Admission: the tenant stage's view of a task, and the messages between the two stages.
Pure, no I/O (decision 56).

A task is decided by its own writer on aion.tasks (keyed by task id, so one tenant's tasks
spread over every worker). Only admission needs the tenant's single writer: the counters,
slots, queues and timers of ``commands.scheduler``. The two stages talk through small internal
commands:

* task stage -> admission (on aion.commands, keyed by tenant): ``AdmitTask`` once a task is
  authorized, ``WatchRun`` when a run started and is still going, ``SettleTask`` when a run
  ended (the task is terminal, or waits for a retry);
* admission -> task stage (on aion.tasks, keyed by task): ``ScheduleRun`` when the task got a
  slot, ``AbortTask`` when its deadline passed, its run's worker went silent, or its agent is
  no longer deployed.

Admission keeps one small entry per live task (a job): its status as admission knows it
(authorized = queued, scheduled or running = holding a slot, retrying, ending = told to end,
its slot still held until the task stage settles it), its agent, attempt and run. It is a
``TaskState`` without the input or anything else of the task, so the scheduler reads it as it
read the task when both lived on one partition.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from commands.task import TaskState

ADMIT = "aion.admission.AdmitTask"
SETTLE = "aion.admission.SettleTask"
WATCH = "aion.admission.WatchRun"
SCHEDULE_RUN = "aion.admission.ScheduleRun"
ABORT = "aion.admission.AbortTask"
REPLICATE_FACT = "aion.facts.ReplicateFact"

# Decided by the tenant stage, about admission (its primary document is the scheduler's).
ADMISSION_COMMANDS = frozenset({ADMIT, SETTLE, WATCH})
# Internal commands no caller waits for: never rejected, dead-lettered if unproducible.
INTERNAL = frozenset({*ADMISSION_COMMANDS, SCHEDULE_RUN, ABORT, REPLICATE_FACT})

ENDED, RETRY = "ended", "retry"
DEADLINE, RUN_LOST, AGENT_UNAVAILABLE = "deadline", "run_lost", "agent_unavailable"
ENDING = "ending"
# Task statuses after which admission is told (SettleTask ended): it had asked for a slot.
ADMITTED = frozenset({"authorized", "scheduled", "running", "retrying"})

JOB_FIELDS = ("status", "agent_name", "attempt", "run_id", "deadline_ms")


def job_key(tenant_id: str, task_id: str) -> str:
    return f"job:{tenant_id}/{task_id}"


def job_state(task_id: str, stored: dict[str, Any] | None) -> TaskState:
    """A job entry read as the task state the scheduler knows (absent when there is none)."""
    if not stored:
        return TaskState()
    return TaskState(
        task_id=task_id,
        status=str(stored["status"]),
        agent_name=str(stored["agent_name"]),
        attempt=int(stored.get("attempt") or 0),
        run_id=stored.get("run_id"),
        deadline_ms=stored.get("deadline_ms"),
    )


def job_entry(state: TaskState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in JOB_FIELDS}


def admitted(task_id: str, agent_name: str, deadline_ms: int | None) -> TaskState:
    return TaskState(
        task_id=task_id, status="authorized", agent_name=agent_name, deadline_ms=deadline_ms
    )


def scheduled(job: TaskState, attempt: int, run_id: str) -> TaskState:
    return replace(job, status="scheduled", attempt=attempt, run_id=run_id)
