"""The tasks read model, with each task's runs and their artifacts (all from `aion.events.task`).

Every task-stream event (task, run and artifact events alike) bumps the task's version, so the
task row's `version` guards them all: an event applies only when its version is newer than the
row's, and the run and artifact statements run only after that guard passed. A duplicate or an
older event therefore changes nothing anywhere.

The task's status is folded with `commands.task.evolve` itself, from the row's current
status and run, so the read model follows the write model's machine exactly (an event out of
turn is recorded but leaves the status alone; a terminal status is never left).

A run's status follows the kernel's reports only: scheduled (TaskScheduled), running
(RunStarted), then succeeded or failed. The first ending is kept: a late report for a run the
watchdog already failed as worker_lost does not rewrite it (its artifacts are still recorded).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from commands.model import Event
from commands.task import (
    ARTIFACT_STORED,
    RUN_FAILED,
    RUN_PROGRESS,
    RUN_STARTED,
    RUN_SUCCEEDED,
    SCHEDULED,
    SUBMITTED,
    TASK_EVENTS,
    TERMINAL,
    TaskState,
    evolve,
)
from projections.bulk import BatchPart, Row, Rows, insert_new
from projections.runner import Delivered
from projections.storable import storable
from schemas.topics import events_topic

# What evolve reads and writes after the submission; the rest of the row never changes.
TASK_COLUMNS = (
    "status", "enforcement_id", "attempt", "run_id", "output_digest", "reason", "version",
    "updated_at", "finished_at",
)  # fmt: skip
RUN_COLUMNS = (
    "status", "worker", "started_at", "progress_percent", "progress_message", "output_digest",
    "output_bytes", "fuel_used", "duration_ms", "failure_reason", "failure_message",
    "finished_at",
)  # fmt: skip
UNFINISHED = ("scheduled", "running")


class TasksProjection(BatchPart):
    name = "tasks"
    topics: tuple[str, ...] = (events_topic("task"),)

    def steps(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> Iterator[None]:
        # CommandRejected (the outcomes' business) and anything not the task's are left out.
        events = [
            (name, storable(value))
            for name, value, _ in batch
            if name in TASK_EVENTS and value["envelope"]["aggregate_type"] == "task"
        ]
        keys = {(v["envelope"]["tenant_id"], v["task_id"]) for _, v in events}
        tasks = Rows("tasks", ("tenant_id", "task_id"), TASK_COLUMNS)
        runs = Rows("runs", ("tenant_id", "task_id", "run_id"), RUN_COLUMNS, versioned=False)
        tasks.load(cur, ("tenant_id", "task_id"), keys)
        runs.load(cur, ("tenant_id", "task_id"), keys)
        yield
        artifacts: list[Row] = []
        for name, value in events:
            fold(tasks, runs, artifacts, name, value)
        tasks.flush(cur)
        runs.flush(cur)
        insert_new(cur, "artifacts", artifacts)


def fold(tasks: Rows, runs: Rows, artifacts: list[Row], name: str, value: dict[str, Any]) -> None:
    """Apply one task-stream event to the task's row, and then to its run or artifacts, if it
    is newer than the row."""
    env = value["envelope"]
    tenant, task, version, at = (
        env["tenant_id"], value["task_id"], env["aggregate_version"], env["occurred_at"],
    )  # fmt: skip
    row = tasks.get((tenant, task))
    if name == SUBMITTED and row is None:
        tasks.put(
            {
                "tenant_id": tenant,
                "task_id": task,
                "agent_name": value["agent_name"],
                "agent_version": value["agent_version"],
                "status": "submitted",
                "input": value["input"],
                "input_bytes": value["input_bytes"],
                "labels": value.get("labels") or {},
                "deadline_ms": value["deadline_ms"],
                "submitted_by": value["submitted_by"],
                "enforcement_id": None,
                "attempt": 0,
                "run_id": None,
                "output_digest": None,
                "reason": None,
                "version": version,
                "submitted_at": at,
                "updated_at": at,
                "finished_at": None,
            }
        )
        return
    # Already submitted: evolve counts it and changes nothing else (if it is newer).
    if row is None or row["version"] >= version:
        return  # a duplicate or older event, or a task never submitted
    payload = {k: v for k, v in value.items() if k != "envelope"}
    before = TaskState(**{f: row[f] for f in STATE_FIELDS}, version=row["version"])
    after = evolve(before, Event(name, payload))
    row.update({f: getattr(after, f) for f in STATE_FIELDS}, version=version, updated_at=at)
    if after.status in TERMINAL and before.status not in TERMINAL:
        row["finished_at"] = at
    if name == ARTIFACT_STORED:
        artifacts.append(
            {
                "tenant_id": tenant,
                "task_id": task,
                "run_id": value["run_id"],
                "artifact_id": value["artifact_id"],
                "digest": value["digest"],
                "size_bytes": value["size_bytes"],
                "content_type": value["content_type"],
                "object_key": value["object_key"],
                "stored_at": at,
            }
        )
    elif name in RUN_EVENTS:
        run_event(runs, name, (tenant, task, value["run_id"]), value, at)


STATE_FIELDS = ("status", "enforcement_id", "attempt", "run_id", "output_digest", "reason")
RUN_EVENTS = frozenset({SCHEDULED, RUN_STARTED, RUN_PROGRESS, RUN_SUCCEEDED, RUN_FAILED})


def run_event(runs: Rows, name: str, key: tuple[str, str, str], value: Row, at: Any) -> None:
    """A run follows the kernel's reports only; its first ending is kept."""
    run = runs.get(key)
    if name == SCHEDULED:
        if run is None:
            tenant, task, run_id = key
            runs.put(
                {
                    "tenant_id": tenant,
                    "task_id": task,
                    "run_id": run_id,
                    "attempt": value["attempt"],
                    "status": "scheduled",
                    "scheduled_at": at,
                }
            )
        return
    if run is None:
        return
    if name == RUN_STARTED and run["status"] == "scheduled":
        run.update(status="running", worker=value["worker"], started_at=at)
    elif name == RUN_PROGRESS:
        run.update(progress_percent=value["percent"], progress_message=value["message"])
    elif name == RUN_SUCCEEDED and run["status"] in UNFINISHED:
        run.update(
            status="succeeded",
            output_digest=value["output_digest"],
            output_bytes=value["output_bytes"],
            fuel_used=value["fuel_used"],
            duration_ms=value["duration_ms"],
            finished_at=at,
        )
    elif name == RUN_FAILED and run["status"] in UNFINISHED:
        run.update(
            status="failed",
            failure_reason=value["reason"],
            failure_message=value["message"],
            fuel_used=value["fuel_used"],
            duration_ms=value["duration_ms"],
            finished_at=at,
        )
