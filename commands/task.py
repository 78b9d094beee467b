"""The Task aggregate: one request to run a deployed agent on an input. Pure, no I/O.

Id: ``scoped_id(tenant_id, task_id)``. Status machine::

    absent -> submitted -> authorized | rejected
    authorized -> scheduled -> running -> succeeded | failed | retrying
    scheduled -> failed | retrying          (the kernel refused the run before starting it)
    authorized | retrying -> failed         (its agent was no longer deployed when admitted)
    retrying -> scheduled                   (the next attempt, after the backoff)
    any non-terminal but submitted -> timed_out (its deadline passed)
    any non-terminal -> cancelled

Terminal: rejected, succeeded, failed, timed_out, cancelled. A task never leaves one.

The decider handles SubmitTask and CancelTask from the API, and the kernel workers' reports
(RecordRunStarted, ...), which it records as run events. Enforcement (TaskAuthorized or
TaskRejected) and orchestration (TaskScheduled, TaskRetryScheduled, TaskSucceeded, ...) are
decided by the stream processor's later stages (``commands.enforcement``,
``commands.orchestration``); ``evolve`` folds them all.

Which events belong to the task's stream (``aion.events.task``, keyed by the task id):

* ``aion.task.*``: the task itself.
* ``aion.run.*`` and ``aion.artifact.*``: a run (one attempt) and its artifacts are entities
  inside the task aggregate, not aggregates of their own (ERD: TASK histories RUN produces
  ARTIFACT). Keying them by task keeps every attempt, its progress and its output in one
  ordered history. Each bumps the task's version; only RunStarted changes the status
  (scheduled -> running). RunSucceeded/RunFailed record the outcome of the run; the
  orchestrator then decides the task's fate (TaskSucceeded, TaskFailed or a retry).
* ``aion.enforcement.EnforcementDecided`` is NOT a task event: an enforcement is its own
  aggregate (POLICY applies ENFORCEMENT validates TASK) on its own stream; the task only keeps
  the id the orchestrator copies into TaskAuthorized. ``evolve`` ignores it (no version bump).

``evolve`` is total: every task-stream event counts one version (its envelope's
aggregate_version), but a status only changes along the machine above. An event that arrives
out of turn (e.g. a RunSucceeded after a CancelTask won the race) is recorded, and the status
stays put; in particular a terminal status is never left.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from commands.agent import check_agent_name, strict_json
from commands.aggregate import Aggregate
from commands.input_schema import input_problem
from commands.model import Command, Context, Decision, Event, Rejection, scoped_id

AGGREGATE = "task"

SUBMIT = "aion.task.SubmitTask"
CANCEL = "aion.task.CancelTask"

SUBMITTED = "aion.task.TaskSubmitted"
CANCELLED = "aion.task.TaskCancelled"
AUTHORIZED = "aion.task.TaskAuthorized"
REJECTED = "aion.task.TaskRejected"
SCHEDULED = "aion.task.TaskScheduled"
RETRY_SCHEDULED = "aion.task.TaskRetryScheduled"
SUCCEEDED = "aion.task.TaskSucceeded"
FAILED = "aion.task.TaskFailed"
TIMED_OUT = "aion.task.TaskTimedOut"

RUN_STARTED = "aion.run.RunStarted"
RUN_PROGRESS = "aion.run.RunProgress"
RUN_SUCCEEDED = "aion.run.RunSucceeded"
RUN_FAILED = "aion.run.RunFailed"

ARTIFACT_STORED = "aion.artifact.ArtifactStored"

# The kernel workers' reports (internal commands) and the run event each is recorded as.
REPORTS: dict[str, str] = {
    "aion.run.RecordRunStarted": RUN_STARTED,
    "aion.run.RecordRunProgress": RUN_PROGRESS,
    "aion.run.RecordRunSucceeded": RUN_SUCCEEDED,
    "aion.run.RecordRunFailed": RUN_FAILED,
    "aion.run.RecordArtifactStored": ARTIFACT_STORED,
}

# A whole run in one report (a kernel worker's usual report): recorded as the run events the
# one-fact reports above would have been, in their order, so every reader sees the same history.
FINISHED = "aion.run.RecordRunFinished"
ARTIFACT_FIELDS = ("artifact_id", "digest", "size_bytes", "content_type", "object_key")

# Another aggregate's event (see the module docstring): the task's evolve ignores it.
ENFORCEMENT_DECIDED = "aion.enforcement.EnforcementDecided"

TASK_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
LONG_RANGE = (-(2**63), 2**63 - 1)

TERMINAL = frozenset({"rejected", "succeeded", "failed", "timed_out", "cancelled"})

# event type -> (statuses it may move the task from, the status it moves it to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    SUBMITTED: (frozenset({"absent"}), "submitted"),
    AUTHORIZED: (frozenset({"submitted"}), "authorized"),
    REJECTED: (frozenset({"submitted"}), "rejected"),
    SCHEDULED: (frozenset({"authorized", "retrying"}), "scheduled"),
    RUN_STARTED: (frozenset({"scheduled"}), "running"),
    SUCCEEDED: (frozenset({"scheduled", "running"}), "succeeded"),
    # from authorized or retrying: admission found its agent no longer deployed
    FAILED: (frozenset({"authorized", "scheduled", "running", "retrying"}), "failed"),
    RETRY_SCHEDULED: (frozenset({"scheduled", "running"}), "retrying"),
    TIMED_OUT: (frozenset({"authorized", "scheduled", "running", "retrying"}), "timed_out"),
    CANCELLED: (
        frozenset({"submitted", "authorized", "scheduled", "running", "retrying"}),
        "cancelled",
    ),
}
# Task-stream events that count a version but never change the status.
RECORDED_ONLY = frozenset({RUN_PROGRESS, RUN_SUCCEEDED, RUN_FAILED, ARTIFACT_STORED})
TASK_EVENTS = frozenset(TRANSITIONS) | RECORDED_ONLY


@dataclass(frozen=True)
class TaskState:
    version: int = 0
    task_id: str | None = None
    status: str = "absent"
    agent_name: str | None = None
    agent_version: str | None = None
    input_bytes: int = 0
    input: str = ""  # the JSON text, kept for dispatching every attempt
    labels: dict[str, str] = field(default_factory=dict)
    deadline_ms: int | None = None
    submitted_by: str | None = None
    enforcement_id: str | None = None
    attempt: int = 0  # of the latest TaskScheduled; 0 until the first
    run_id: str | None = None  # of the latest TaskScheduled
    output_digest: str | None = None  # of the current run, once it returned an output
    reason: str | None = None  # why it was rejected, failed or cancelled

    @property
    def exists(self) -> bool:
        return self.status != "absent"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


# --- pure checks (the API may run them too, before producing) ---------------------------------


def check_submit(payload: Mapping[str, Any], now_ms: int) -> Rejection | None:
    """Rules on a SubmitTask's own fields, in field order."""
    task_id = payload.get("task_id")
    if not isinstance(task_id, str) or not TASK_ID.fullmatch(task_id):
        return Rejection(
            "invalid", "task_id must be 1-64 characters of letters, digits and dashes", "/task_id"
        )
    invalid_name = check_agent_name(payload.get("agent_name"), "/agent_name")
    if invalid_name:
        return invalid_name
    text = payload.get("input")
    try:
        if not isinstance(text, str):
            raise ValueError("not a string")
        strict_json(text)
    except ValueError:
        return Rejection("invalid", "input must be a string holding valid JSON", "/input")
    labels = payload.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        return Rejection("invalid", "labels must map strings to strings", "/labels")
    deadline = payload.get("deadline_ms")
    if deadline is not None:
        if (
            not isinstance(deadline, int)
            or isinstance(deadline, bool)
            or not LONG_RANGE[0] <= deadline <= LONG_RANGE[1]
        ):
            return Rejection("invalid", "deadline_ms must be epoch milliseconds", "/deadline_ms")
        if deadline < now_ms:
            return Rejection(
                "invalid", f"deadline_ms {deadline} is in the past (now {now_ms})", "/deadline_ms"
            )
    submitted_by = payload.get("submitted_by")
    if submitted_by is not None and not isinstance(submitted_by, str):
        return Rejection("invalid", "submitted_by must be a string", "/submitted_by")
    return None


# --- decide / evolve --------------------------------------------------------------------------


def summary(state: TaskState) -> dict[str, Any]:
    return {
        "status": state.status,
        "version": state.version,
        "agent_name": state.agent_name,
        "attempt": state.attempt,
    }


def decide(state: TaskState, command: Command, context: Context) -> Decision:
    if command.type == SUBMIT:
        return _decide_submit(state, command, context)
    if command.type == CANCEL:
        return _decide_cancel(state, command)
    if command.type in REPORTS:
        return _decide_report(state, command)
    if command.type == FINISHED:
        return _decide_finished(state, command)
    return Rejection("unsupported", f"the task aggregate does not handle {command.type}")


def _decide_submit(state: TaskState, command: Command, context: Context) -> Decision:
    p = command.payload
    invalid = check_submit(p, context.now_ms)
    if invalid:
        return invalid
    tenant_id = str(command.envelope["tenant_id"])
    task_id, agent_name = str(p["task_id"]), str(p["agent_name"])
    addressed = command.addressed_elsewhere(task_id)
    if addressed is not None:
        return Rejection(
            "invalid",
            f"task_id {task_id} does not match the task addressed ({addressed})",
            "/task_id",
        )
    if state.exists:
        return Rejection("already_exists", f"task {task_id} already exists", "/task_id")
    agent = context.find("agent", scoped_id(tenant_id, agent_name))
    if agent is None or agent.get("status") in (None, "absent"):
        return Rejection(
            "not_found", f"agent {agent_name} does not exist in tenant {tenant_id}", "/agent_name"
        )
    if agent["status"] != "deployed":
        return Rejection(
            "conflict", f"agent {agent_name} is {agent['status']}, not deployed", "/agent_name"
        )
    text = str(p["input"])
    declared = (agent.get("manifest") or {}).get("input_schema")
    if declared:
        problem = input_problem(str(declared), strict_json(text))
        if problem:
            return Rejection("invalid", problem, "/input")
    return [
        Event(
            SUBMITTED,
            {
                "task_id": task_id,
                "agent_name": agent_name,
                "agent_version": str(agent.get("agent_version") or ""),
                "input": text,
                "input_bytes": len(text.encode("utf-8")),
                "labels": dict(p.get("labels") or {}),
                "deadline_ms": p.get("deadline_ms"),
                "submitted_by": p.get("submitted_by"),
            },
        )
    ]


def _decide_cancel(state: TaskState, command: Command) -> Decision:
    reason = command.payload.get("reason") or ""
    if not isinstance(reason, str):
        return Rejection("invalid", "reason must be a string", "/reason")
    if not state.exists:
        return Rejection("not_found", "the task does not exist")
    if state.terminal:
        return Rejection("conflict", f"task {state.task_id} is already {state.status}")
    return [Event(CANCELLED, {"task_id": state.task_id, "reason": reason})]


def _decide_report(state: TaskState, command: Command) -> Decision:
    """A kernel report is a fact: it is recorded whenever the task exists, even late or for an
    earlier attempt (the history stays true); only the current run moves the status."""
    if not state.exists:
        return Rejection("not_found", "the task does not exist", "/task_id")
    if command.payload.get("task_id") != state.task_id:
        return Rejection("invalid", "task_id does not match the task addressed", "/task_id")
    recorded = dict(command.payload)
    if command.type == "aion.run.RecordRunSucceeded":
        recorded["agent_name"] = state.agent_name
    return [Event(REPORTS[command.type], recorded)]


def _decide_finished(state: TaskState, command: Command) -> Decision:
    """A run's start (unless recorded before, or it never started), artifacts and outcome."""
    if not state.exists:
        return Rejection("not_found", "the task does not exist", "/task_id")
    p = command.payload
    if p.get("task_id") != state.task_id:
        return Rejection("invalid", "task_id does not match the task addressed", "/task_id")
    run = {"task_id": state.task_id, "run_id": p["run_id"]}
    events = []
    recorded = state.status == "running" and state.run_id == p["run_id"]  # e.g. a redone run
    if p["start"] == "here" and not recorded:
        events.append(Event(RUN_STARTED, {**run, "attempt": p["attempt"], "worker": p["worker"]}))
    for artifact in p.get("artifacts") or []:
        events.append(Event(ARTIFACT_STORED, {**run, **{k: artifact[k] for k in ARTIFACT_FIELDS}}))
    spent = {"fuel_used": p["fuel_used"], "duration_ms": p["duration_ms"]}
    if p.get("output_digest") is not None:
        outcome = {
            "output_digest": p["output_digest"],
            "output_bytes": p["output_bytes"],
            "agent_name": state.agent_name,
        }
        events.append(Event(RUN_SUCCEEDED, {**run, **outcome, **spent}))
    else:
        failure = {"reason": p.get("failure_reason") or "trap", "message": p["failure_message"]}
        events.append(Event(RUN_FAILED, {**run, **failure, **spent}))
    return events


# Events that only apply to the run the latest TaskScheduled started (a late report from an
# earlier attempt must not move the task).
ABOUT_CURRENT_RUN = frozenset({RUN_STARTED, RUN_SUCCEEDED, SUCCEEDED})


def _moved(state: TaskState, event: Event) -> str:
    """The status after ``event``: the machine's target, or unchanged when out of turn."""
    allowed = TRANSITIONS.get(event.type)
    if allowed is None or state.status not in allowed[0]:
        return state.status
    if event.type in ABOUT_CURRENT_RUN and event.payload.get("run_id") != state.run_id:
        return state.status
    return allowed[1]


def evolve(state: TaskState, event: Event) -> TaskState:
    if event.type not in TASK_EVENTS:
        return state  # EnforcementDecided, CommandRejected, unknown: not the task's history
    p = event.payload
    status = _moved(state, event)
    next_state = replace(state, version=state.version + 1, status=status)
    if event.type == RUN_SUCCEEDED and state.status == "running":
        if p.get("run_id") == state.run_id:
            return replace(next_state, output_digest=p["output_digest"])
        return next_state
    if status == state.status:
        return next_state  # progress, run failures, artifacts, or an event out of turn
    if event.type == SUBMITTED:
        return replace(
            next_state,
            task_id=p["task_id"],
            agent_name=p["agent_name"],
            agent_version=p["agent_version"],
            input_bytes=int(p["input_bytes"]),
            input=str(p.get("input") or ""),
            labels=dict(p.get("labels") or {}),
            deadline_ms=p.get("deadline_ms"),
            submitted_by=p.get("submitted_by"),
        )
    if event.type == AUTHORIZED:
        return replace(next_state, enforcement_id=p["enforcement_id"])
    if event.type == SCHEDULED:
        return replace(next_state, attempt=int(p["attempt"]), run_id=p["run_id"])
    if event.type in (REJECTED, FAILED, CANCELLED, RETRY_SCHEDULED):
        return replace(next_state, reason=p.get("reason", ""))
    return next_state


aggregate = Aggregate(
    AGGREGATE,
    frozenset({SUBMIT, CANCEL, FINISHED, *REPORTS}),
    TaskState,
    decide,
    evolve,
    summary=summary,
    tenant_scoped=True,
    # A run that happened is recorded even if the tenant was suspended meanwhile.
    unconditional=frozenset({FINISHED, *REPORTS}),
)
