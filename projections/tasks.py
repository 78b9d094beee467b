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

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

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
from projections.runner import Position
from projections.storable import storable
from schemas.topics import events_topic

SUBMIT = (
    "insert into tasks (tenant_id, task_id, agent_name, agent_version, status, input,"
    " input_bytes, labels, deadline_ms, submitted_by, version, submitted_at, updated_at)"
    " values (%(tenant)s, %(task)s, %(agent_name)s, %(agent_version)s, 'submitted', %(input)s,"
    " %(input_bytes)s, %(labels)s, %(deadline_ms)s, %(submitted_by)s, %(version)s, %(at)s,"
    " %(at)s) on conflict (tenant_id, task_id) do nothing"
)
# What evolve reads and writes after the submission; the rest of the row never changes.
CURRENT = (
    "select status, enforcement_id, attempt, run_id, output_digest, reason, version from tasks"
    " where tenant_id = %(tenant)s and task_id = %(task)s for update"
)
ADVANCE = (
    "update tasks set status = %(status)s, enforcement_id = %(enforcement_id)s,"
    " attempt = %(attempt)s, run_id = %(run_id)s, output_digest = %(output_digest)s,"
    " reason = %(reason)s, version = %(version)s, updated_at = %(at)s,"
    " finished_at = case when %(ended)s then %(at)s else finished_at end"
    " where tenant_id = %(tenant)s and task_id = %(task)s and version < %(version)s"
)

RUN_KEY = "tenant_id = %(tenant)s and task_id = %(task)s and run_id = %(run_id)s"
UNFINISHED = "status in ('scheduled', 'running')"
RUN_STATEMENTS = {
    SCHEDULED: "insert into runs (tenant_id, task_id, run_id, attempt, status, scheduled_at)"
    " values (%(tenant)s, %(task)s, %(run_id)s, %(attempt)s, 'scheduled', %(at)s)"
    " on conflict do nothing",
    RUN_STARTED: "update runs set status = 'running', worker = %(worker)s, started_at = %(at)s"
    f" where {RUN_KEY} and status = 'scheduled'",
    RUN_PROGRESS: "update runs set progress_percent = %(percent)s,"
    f" progress_message = %(message)s where {RUN_KEY}",
    RUN_SUCCEEDED: "update runs set status = 'succeeded', output_digest = %(output_digest)s,"
    " output_bytes = %(output_bytes)s, fuel_used = %(fuel_used)s,"
    f" duration_ms = %(duration_ms)s, finished_at = %(at)s where {RUN_KEY} and {UNFINISHED}",
    RUN_FAILED: "update runs set status = 'failed', failure_reason = %(reason)s,"
    " failure_message = %(message)s, fuel_used = %(fuel_used)s, duration_ms = %(duration_ms)s,"
    f" finished_at = %(at)s where {RUN_KEY} and {UNFINISHED}",
    ARTIFACT_STORED: "insert into artifacts (tenant_id, task_id, run_id, artifact_id, digest,"
    " size_bytes, content_type, object_key, stored_at) values (%(tenant)s, %(task)s,"
    " %(run_id)s, %(artifact_id)s, %(digest)s, %(size_bytes)s, %(content_type)s,"
    " %(object_key)s, %(at)s) on conflict do nothing",
}


class TasksProjection:
    name = "tasks"
    topics: tuple[str, ...] = (events_topic("task"),)

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        env = value["envelope"]
        if record_name not in TASK_EVENTS or env["aggregate_type"] != "task":
            return  # CommandRejected (the outcomes' business) and anything not the task's
        value = storable(value)
        payload = {k: v for k, v in value.items() if k != "envelope"}
        params = {
            **payload,
            "tenant": env["tenant_id"],
            "task": value["task_id"],
            "version": env["aggregate_version"],
            "at": env["occurred_at"],
        }
        if record_name == SUBMITTED:
            cur.execute(SUBMIT, {**params, "labels": Jsonb(value.get("labels") or {})})
            if cur.rowcount == 1:
                return
            # Already submitted: evolve counts it and changes nothing else (if it is newer).
        if not self._advance(cur, Event(record_name, payload), params):
            return  # a duplicate or older event, or a task never submitted
        if record_name in RUN_STATEMENTS:
            cur.execute(RUN_STATEMENTS[record_name], params)

    def _advance(self, cur: psycopg.Cursor[Any], event: Event, params: dict[str, Any]) -> bool:
        """Fold the event into the task row if it is newer; False when it was not applied."""
        with cur.connection.cursor(row_factory=dict_row) as rows:
            row = rows.execute(CURRENT, params).fetchone()
        if row is None or row["version"] >= params["version"]:
            return False
        before = TaskState(**row)
        after = evolve(before, event)
        cur.execute(
            ADVANCE,
            {
                **params,
                "status": after.status,
                "enforcement_id": after.enforcement_id,
                "attempt": after.attempt,
                "run_id": after.run_id,
                "output_digest": after.output_digest,
                "reason": after.reason,
                "ended": after.status in TERMINAL and before.status not in TERMINAL,
            },
        )
        return cur.rowcount == 1
