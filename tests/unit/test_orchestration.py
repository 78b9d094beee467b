"""The task orchestrator (commands/orchestration.py): a pure process manager, tested alone."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands import orchestration as orch
from commands.model import Event
from commands.orchestration import Limits, SchedulerState
from schemas import catalog

NOW = 1_700_000_000_000
GRACE = orch.DEFAULT_GRACE_MS
LIMITS = Limits()
WINDOW = orch.RATE_WINDOW_MS


def manifest(
    max_concurrency: int = 10,
    max_retries: int = 0,
    retry_backoff_ms: int = 1000,
    timeout_ms: int = 5000,
) -> dict[str, Any]:
    """A normalised agent manifest (the agent aggregate fills every quota)."""
    return {
        "abi": "reactor",
        "quotas": {"fuel": 1000, "memory_mb": 64, "timeout_ms": timeout_ms,
                   "max_concurrency": max_concurrency, "max_retries": max_retries,
                   "retry_backoff_ms": retry_backoff_ms},
    }  # fmt: skip


def queue(
    *task_ids: str,
    agent: str = "summarizer",
    deadline_ms: int | None = None,
    state: SchedulerState | None = None,
    **quotas: int,
) -> SchedulerState:
    """Admit tasks of one agent, in the given order."""
    state = SchedulerState() if state is None else state
    for task_id in task_ids:
        state = orch.admit(state, task_id, agent, "1.0.0", manifest(**quotas), deadline_ms)
    return state


# Task events, as the orchestrator, the task decider and the kernel reports produce them.
def scheduled(task_id: str, attempt: int = 1) -> Event:
    return Event(
        orch.TASK_SCHEDULED,
        {"task_id": task_id, "run_id": f"{task_id}.{attempt}", "attempt": attempt,
         "dispatch_partition": None},
    )  # fmt: skip


def started(task_id: str, attempt: int = 1) -> Event:
    return Event(
        orch.RUN_STARTED,
        {"task_id": task_id, "run_id": f"{task_id}.{attempt}", "attempt": attempt, "worker": "w"},
    )


def run_succeeded(task_id: str, attempt: int = 1) -> Event:
    return Event(
        orch.RUN_SUCCEEDED,
        {"task_id": task_id, "run_id": f"{task_id}.{attempt}", "output_digest": "sha256:0",
         "output_bytes": 2, "fuel_used": 5, "duration_ms": 3},
    )  # fmt: skip


def run_failed(
    task_id: str, attempt: int = 1, reason: str = "trap", message: str | None = "unreachable"
) -> Event:
    return Event(
        orch.RUN_FAILED,
        {"task_id": task_id, "run_id": f"{task_id}.{attempt}", "reason": reason,
         "message": message, "fuel_used": 5, "duration_ms": 3},
    )  # fmt: skip


def ending(event_type: str, task_id: str) -> Event:
    return Event(event_type, {"task_id": task_id, "reason": "x"})


def fold(
    state: SchedulerState, task_id: str, event: Event, now: int
) -> tuple[SchedulerState, list[Event]]:
    """on_event, then every reaction through on_event again (as streams/plan.py applies them)."""
    state, reactions = orch.on_event(state, task_id, event, now)
    emitted: list[Event] = []
    for reaction in reactions:
        emitted.append(reaction)
        state, more = fold(state, task_id, reaction, now)
        emitted += more
    return state, emitted


def fold_all(state: SchedulerState, events: list[tuple[str, Event]], now: int) -> SchedulerState:
    for task_id, event in events:
        state, _ = fold(state, task_id, event, now)
    return state


def settle(
    state: SchedulerState, now: int, limits: Limits = LIMITS, grace_ms: int = GRACE
) -> tuple[SchedulerState, list[tuple[str, Event]]]:
    """Advance until nothing more is due now, folding every event back (streams/plan.py)."""
    emitted: list[tuple[str, Event]] = []
    for _ in range(64):
        due = orch.advance(state, now, limits, grace_ms)
        if not due:
            return orch.prune(state, now), emitted
        for task_id, event in due:
            emitted.append((task_id, event))
            state, reactions = fold(state, task_id, event, now)
            emitted += [(task_id, reaction) for reaction in reactions]
    raise AssertionError("advance never settled")


def short(emitted: list[tuple[str, Event]]) -> list[tuple[str, str]]:
    return [(task_id, event.type.rsplit(".", 1)[1]) for task_id, event in emitted]


def phases(state: SchedulerState) -> dict[str, str]:
    return {task_id: job["phase"] for task_id, job in state.jobs.items()}


def frozen(state: SchedulerState) -> str:
    return json.dumps(state.dump(), sort_keys=True)


def running(*task_ids: str, now: int = NOW, **quotas: Any) -> SchedulerState:
    """Tasks admitted and scheduled (attempt 1) at ``now``, not yet started."""
    state, emitted = settle(queue(*task_ids, **quotas), now)
    assert short(emitted) == [(t, "TaskScheduled") for t in task_ids]
    return state


# --- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "limits"),
    [
        (None, Limits(10, 600, True)),
        ({}, Limits(10, 600, True)),
        ({"status": "active", "limits": {}}, Limits(10, 600, True)),
        ({"status": "active", "limits": None}, Limits(10, 600, True)),
        ({"status": "active", "limits": {"max_concurrent_tasks": 3}}, Limits(3, 600, True)),
        ({"status": "active", "limits": {"tasks_per_minute": 7, "max_fuel": 1}},
         Limits(10, 7, True)),
        ({"status": "suspended", "limits": {"max_concurrent_tasks": 2, "tasks_per_minute": 5}},
         Limits(2, 5, False)),
        ({"status": "absent"}, Limits(10, 600, False)),
    ],
)  # fmt: skip
def test_limits_of_a_tenant_summary(tenant: dict[str, Any] | None, limits: Limits) -> None:
    assert Limits.of(tenant) == limits


# --- admit ------------------------------------------------------------------------------------


def test_admit_queues_a_job_with_a_snapshot_of_its_agent() -> None:
    state = orch.admit(SchedulerState(), "t-1", "summarizer", "1.2.0", manifest(), NOW + 5)
    assert state.seq == 1
    assert state.starts == ()
    assert state.jobs == {
        "t-1": {
            "phase": "queued",
            "seq": 1,
            "agent_name": "summarizer",
            "agent_version": "1.2.0",
            "manifest": manifest(),
            "deadline_ms": NOW + 5,
            "attempt": 0,
            "run_id": None,
            "since_ms": None,
            "started": False,
            "retry_at_ms": None,
        }
    }


def test_admit_puts_tasks_in_arrival_order_not_name_order() -> None:
    state = queue("t-3", "t-1", "t-2")
    assert {t: job["seq"] for t, job in state.jobs.items()} == {"t-3": 1, "t-1": 2, "t-2": 3}
    assert state.seq == 3
    assert state.count("queued") == 3
    assert state.count("queued", "summarizer") == 3
    assert state.count("queued", "other") == 0
    assert state.count("active") == 0


def test_admitting_a_task_twice_is_a_no_op() -> None:
    state = queue("t-1", "t-2")
    again = orch.admit(state, "t-1", "other", "9.9.9", manifest(max_concurrency=1), NOW)
    assert again is state
    assert state.jobs["t-1"]["agent_name"] == "summarizer"
    assert state.seq == 2
    active = running("t-1")
    assert orch.admit(active, "t-1", "summarizer", "1.0.0", manifest(), None) is active


def test_admit_leaves_the_given_state_and_manifest_alone() -> None:
    state = queue("t-1")
    before = frozen(state)
    given_manifest = manifest()
    after = orch.admit(state, "t-2", "summarizer", "1.0.0", given_manifest, None)
    assert frozen(state) == before
    given_manifest["abi"] = "changed"
    assert after.jobs["t-2"]["manifest"]["abi"] == "reactor"


# --- run ids and backoff ----------------------------------------------------------------------


def test_run_ids_are_the_task_id_and_the_attempt() -> None:
    assert orch.run_id_for("t-1", 1) == "t-1.1"
    assert orch.run_id_for("Task-01", 12) == "Task-01.12"


@pytest.mark.parametrize(
    ("base", "failed_attempt", "expected"),
    [(1000, 1, 1000), (1000, 2, 2000), (1000, 3, 4000), (1000, 4, 8000), (1000, 0, 1000),
     (500, 2, 1000), (0, 5, 0), (1000, 9, 256_000), (1000, 10, orch.MAX_BACKOFF_MS),
     (1000, 60, orch.MAX_BACKOFF_MS), (200_000, 1, 200_000), (200_000, 2, orch.MAX_BACKOFF_MS),
     (10**9, 1, orch.MAX_BACKOFF_MS)],
)  # fmt: skip
def test_backoff_doubles_per_further_attempt_up_to_five_minutes(
    base: int, failed_attempt: int, expected: int
) -> None:
    assert orch.backoff_ms(manifest(retry_backoff_ms=base), failed_attempt) == expected


def test_backoff_defaults_to_one_second() -> None:
    assert orch.backoff_ms({"quotas": {}}, 1) == 1000
    assert orch.MAX_BACKOFF_MS == 5 * 60 * 1000


# --- advance: admissions ----------------------------------------------------------------------


def test_advance_schedules_in_fifo_order_within_max_concurrent_tasks() -> None:
    state = queue("t-3", "t-1", "t-2", "t-4")
    due = orch.advance(state, NOW, Limits(max_concurrent_tasks=2))
    assert short(due) == [("t-3", "TaskScheduled"), ("t-1", "TaskScheduled")]


def test_task_scheduled_payload() -> None:
    due = orch.advance(queue("t-1"), NOW, LIMITS)
    assert due == [
        ("t-1", Event(orch.TASK_SCHEDULED,
                      {"task_id": "t-1", "run_id": "t-1.1", "attempt": 1,
                       "dispatch_partition": None})),
    ]  # fmt: skip


def test_advance_decides_but_does_not_change_the_state() -> None:
    state = queue("t-1", "t-2")
    before = frozen(state)
    assert orch.advance(state, NOW, LIMITS)
    assert frozen(state) == before


def test_active_jobs_hold_their_slots_until_they_end() -> None:
    state = running("t-1", "t-2")
    state = queue("t-3", "t-4", state=state)
    limits = Limits(max_concurrent_tasks=3)
    state, emitted = settle(state, NOW, limits)
    assert short(emitted) == [("t-3", "TaskScheduled")]
    state, reactions = fold(state, "t-1", run_succeeded("t-1"), NOW + 1)
    assert [e.type for e in reactions] == [orch.TASK_SUCCEEDED]
    state, emitted = settle(state, NOW + 1, limits)
    assert short(emitted) == [("t-4", "TaskScheduled")]
    assert phases(state) == {"t-2": "active", "t-3": "active", "t-4": "active"}


def test_a_full_agent_does_not_block_other_agents_tasks_behind_it() -> None:
    state = queue("a-1", "a-2", "a-3", agent="alpha", max_concurrency=1)
    state = queue("b-1", "b-2", agent="beta", max_concurrency=2, state=state)
    due = orch.advance(state, NOW, Limits(max_concurrent_tasks=3))
    assert short(due) == [("a-1", "TaskScheduled"), ("b-1", "TaskScheduled"),
                          ("b-2", "TaskScheduled")]  # fmt: skip


def test_an_agents_running_tasks_count_against_its_max_concurrency() -> None:
    state = running("a-1", "a-2", max_concurrency=2)
    state = queue("a-3", state=state, max_concurrency=2)
    assert orch.advance(state, NOW + 1, LIMITS) == []
    state, _ = fold(state, "a-1", run_failed("a-1"), NOW + 1)  # max_retries 0: it fails
    assert "a-1" not in state.jobs
    assert short(orch.advance(state, NOW + 1, LIMITS)) == [("a-3", "TaskScheduled")]


def test_tasks_per_minute_caps_first_attempts_in_a_sliding_window() -> None:
    limits = Limits(tasks_per_minute=2)
    state = queue("t-1", "t-2", "t-3", "t-4", "t-5")
    state, emitted = settle(state, NOW, limits)
    assert short(emitted) == [("t-1", "TaskScheduled"), ("t-2", "TaskScheduled")]
    assert state.starts == (NOW, NOW)
    for task_id in ("t-1", "t-2"):  # finishing frees slots, not places in the window
        state, _ = fold(state, task_id, run_succeeded(task_id), NOW + 1)
    assert settle(state, NOW + WINDOW - 1, limits)[1] == []
    state, emitted = settle(state, NOW + WINDOW, limits)
    assert short(emitted) == [("t-3", "TaskScheduled"), ("t-4", "TaskScheduled")]


def test_the_rate_window_slides_rather_than_resetting_each_minute() -> None:
    limits = Limits(tasks_per_minute=2)
    state, _ = settle(queue("t-1"), NOW, limits)
    state, _ = settle(queue("t-2", "t-3", "t-4", state=state), NOW + 30_000, limits)
    assert state.starts == (NOW, NOW + 30_000)
    assert phases(state) == {"t-1": "active", "t-2": "active", "t-3": "queued", "t-4": "queued"}
    assert settle(state, NOW + 59_999, limits)[1] == []
    state, emitted = settle(state, NOW + 60_000, limits)  # t-1's start leaves the window
    assert short(emitted) == [("t-3", "TaskScheduled")]
    assert settle(state, NOW + 89_999, limits)[1] == []
    state, emitted = settle(state, NOW + 90_000, limits)
    assert short(emitted) == [("t-4", "TaskScheduled")]


def test_retries_are_exempt_from_the_rate_window() -> None:
    limits = Limits(tasks_per_minute=1)
    state, _ = settle(queue("t-1", "t-2", max_retries=1, retry_backoff_ms=0), NOW, limits)
    assert phases(state) == {"t-1": "active", "t-2": "queued"}
    state, reactions = fold(state, "t-1", run_failed("t-1"), NOW + 1)
    assert [e.type for e in reactions] == [orch.TASK_RETRY_SCHEDULED]
    state, emitted = settle(state, NOW + 1, limits)
    assert short(emitted) == [("t-1", "TaskScheduled")]  # t-2 still waits on the window
    assert emitted[0][1].payload["attempt"] == 2
    assert state.starts == (NOW,)


def test_retries_that_are_due_go_before_queued_tasks() -> None:
    # q-2 waits behind its agent's only slot while r-3 (admitted later) runs, fails, retries.
    state = queue("q-1", "q-2", agent="alpha", max_concurrency=1)
    state = queue("r-3", agent="beta", max_retries=1, retry_backoff_ms=1000, state=state)
    state, emitted = settle(state, NOW, Limits(max_concurrent_tasks=2))
    assert short(emitted) == [("q-1", "TaskScheduled"), ("r-3", "TaskScheduled")]
    state, _ = fold(state, "r-3", run_failed("r-3"), NOW)
    state, _ = fold(state, "q-1", run_succeeded("q-1"), NOW + 1000)
    assert phases(state) == {"q-2": "queued", "r-3": "retrying"}
    due = orch.advance(state, NOW + 1000, Limits(max_concurrent_tasks=1))
    assert short(due) == [("r-3", "TaskScheduled")]
    assert due[0][1].payload == {"task_id": "r-3", "run_id": "r-3.2", "attempt": 2,
                                 "dispatch_partition": None}  # fmt: skip


def test_a_retry_waits_for_its_time_and_for_a_slot() -> None:
    limits = Limits(max_concurrent_tasks=1)
    state = running("t-1", max_retries=1, retry_backoff_ms=1000)
    state, reactions = fold(state, "t-1", run_failed("t-1"), NOW + 5)
    assert reactions[0].payload["retry_at_ms"] == NOW + 1005
    assert settle(state, NOW + 1004, limits)[1] == []
    state, emitted = settle(state, NOW + 1005, limits)
    assert short(emitted) == [("t-1", "TaskScheduled")]


def test_a_suspended_tenant_schedules_nothing_but_deadlines_still_time_out() -> None:
    suspended = Limits(active=False)
    state = queue("t-1", deadline_ms=NOW + 1000)
    state = queue("t-2", state=state)
    assert orch.advance(state, NOW, suspended) == []
    assert orch.advance(state, NOW + 999, suspended) == []
    state, emitted = settle(state, NOW + 1000, suspended)
    assert short(emitted) == [("t-1", "TaskTimedOut")]
    assert phases(state) == {"t-2": "queued"}
    state, emitted = settle(state, NOW + 1000, LIMITS)  # reinstated: the queue moves
    assert short(emitted) == [("t-2", "TaskScheduled")]


def test_a_suspended_tenant_holds_due_retries_but_still_gives_up_silent_workers() -> None:
    suspended = Limits(active=False)
    state = running("t-1", "t-2", max_retries=1, retry_backoff_ms=0)
    state, _ = fold(state, "t-1", run_failed("t-1"), NOW)
    state, _ = fold(state, "t-2", started("t-2"), NOW)
    state, emitted = settle(state, NOW + 5000 + GRACE, suspended)
    assert short(emitted) == [("t-2", "RunFailed"), ("t-2", "TaskRetryScheduled")]
    assert phases(state) == {"t-1": "retrying", "t-2": "retrying"}
    state, emitted = settle(state, NOW + 5000 + GRACE, LIMITS)
    assert short(emitted) == [("t-1", "TaskScheduled"), ("t-2", "TaskScheduled")]


# --- on_event ---------------------------------------------------------------------------------


def test_events_of_a_task_the_orchestrator_does_not_hold_are_ignored() -> None:
    state = queue("t-1")
    for event in (scheduled("t-9"), started("t-9"), run_failed("t-9"), run_succeeded("t-9"),
                  ending(orch.TASK_CANCELLED, "t-9")):  # fmt: skip
        assert orch.on_event(state, "t-9", event, NOW) == (state, [])


def test_task_scheduled_makes_the_job_active_and_records_a_first_attempts_start() -> None:
    state = queue("t-1", deadline_ms=NOW + 10)
    after, reactions = orch.on_event(state, "t-1", scheduled("t-1"), NOW + 3)
    assert reactions == []
    assert after.starts == (NOW + 3,)
    assert after.jobs["t-1"] == {
        **state.jobs["t-1"],
        "phase": "active",
        "attempt": 1,
        "run_id": "t-1.1",
        "since_ms": NOW + 3,
        "started": False,
    }
    assert state.jobs["t-1"]["phase"] == "queued"  # the old state is untouched
    assert after.count("active") == 1


def test_scheduling_a_retry_records_no_start_and_resets_the_run() -> None:
    state = running("t-1", max_retries=1)
    state, _ = fold(state, "t-1", started("t-1"), NOW + 1)
    state, _ = fold(state, "t-1", run_failed("t-1"), NOW + 2)
    assert state.jobs["t-1"]["phase"] == "retrying"
    state, _ = fold(state, "t-1", scheduled("t-1", 2), NOW + 5000)
    job = state.jobs["t-1"]
    assert (job["phase"], job["attempt"], job["run_id"], job["since_ms"], job["started"]) == (
        "active", 2, "t-1.2", NOW + 5000, False,
    )  # fmt: skip
    assert state.starts == (NOW,)


def test_run_started_of_the_current_run_marks_it_started() -> None:
    state = running("t-1")
    after, reactions = orch.on_event(state, "t-1", started("t-1"), NOW + 40)
    assert reactions == []
    assert (after.jobs["t-1"]["started"], after.jobs["t-1"]["since_ms"]) == (True, NOW + 40)
    assert after.jobs["t-1"]["phase"] == "active"


def test_run_succeeded_of_the_current_run_reacts_with_task_succeeded() -> None:
    state = running("t-1")
    state, _ = fold(state, "t-1", started("t-1"), NOW + 1)
    after, reactions = orch.on_event(state, "t-1", run_succeeded("t-1"), NOW + 2)
    assert reactions == [Event(orch.TASK_SUCCEEDED, {"task_id": "t-1", "run_id": "t-1.1"})]
    assert after == state  # the slot is held until the ending is folded
    after, _ = fold(state, "t-1", run_succeeded("t-1"), NOW + 2)
    assert after.jobs == {}


@pytest.mark.parametrize(
    ("max_retries", "base", "attempt", "retry_in"),
    [(1, 1000, 1, 1000), (2, 1000, 1, 1000), (2, 1000, 2, 2000), (3, 1000, 3, 4000),
     (5, 0, 4, 0), (9, 200_000, 2, orch.MAX_BACKOFF_MS)],
)  # fmt: skip
def test_run_failed_within_max_retries_reacts_with_a_retry_after_the_backoff(
    max_retries: int, base: int, attempt: int, retry_in: int
) -> None:
    state = running("t-1", max_retries=max_retries, retry_backoff_ms=base)
    state = fold_all(state, [("t-1", scheduled("t-1", attempt))], NOW)
    after, reactions = orch.on_event(state, "t-1", run_failed("t-1", attempt), NOW + 7)
    assert after == state
    assert reactions == [
        Event(orch.TASK_RETRY_SCHEDULED,
              {"task_id": "t-1", "run_id": f"t-1.{attempt}", "next_attempt": attempt + 1,
               "retry_at_ms": NOW + 7 + retry_in, "reason": "trap: unreachable"}),
    ]  # fmt: skip


def test_a_retry_scheduled_frees_the_slot_until_the_retry_is_due() -> None:
    state = running("t-1", max_retries=1)
    state, reactions = fold(state, "t-1", run_failed("t-1"), NOW)
    job = state.jobs["t-1"]
    assert (job["phase"], job["retry_at_ms"], job["attempt"]) == ("retrying", NOW + 1000, 1)
    assert state.count("active") == 0
    assert reactions[0].payload["next_attempt"] == 2


@pytest.mark.parametrize(
    ("max_retries", "attempt", "message", "reason"),
    [(0, 1, "unreachable", "trap: unreachable (after 1 attempt)"),
     (1, 2, "unreachable", "trap: unreachable (after 2 attempts)"),
     (3, 4, "unreachable", "trap: unreachable (after 4 attempts)"),
     (0, 1, "", "trap (after 1 attempt)"),
     (0, 1, None, "trap (after 1 attempt)")],
)  # fmt: skip
def test_run_failed_beyond_max_retries_fails_the_task_naming_failure_and_attempts(
    max_retries: int, attempt: int, message: str | None, reason: str
) -> None:
    state = running("t-1", max_retries=max_retries)
    state = fold_all(state, [("t-1", scheduled("t-1", attempt))], NOW)
    after, reactions = orch.on_event(state, "t-1", run_failed("t-1", attempt, message=message),
                                     NOW + 1)  # fmt: skip
    assert after == state
    assert reactions == [Event(orch.TASK_FAILED, {"task_id": "t-1", "reason": reason})]


def test_a_run_refused_before_it_started_is_retried_like_any_failure() -> None:
    state = running("t-1", max_retries=1, retry_backoff_ms=0)
    state, reactions = fold(state, "t-1", run_failed("t-1", reason="refused"), NOW)
    assert [e.type for e in reactions] == [orch.TASK_RETRY_SCHEDULED]
    assert reactions[0].payload["reason"] == "refused: unreachable"


def test_a_task_makes_exactly_max_retries_plus_one_attempts() -> None:
    state = running("t-1", max_retries=2, retry_backoff_ms=0)
    attempts = [1]
    for attempt in (1, 2, 3):
        state, reactions = fold(state, "t-1", run_failed("t-1", attempt), NOW)
        state, emitted = settle(state, NOW)
        attempts += [e.payload["attempt"] for _, e in emitted]
    assert attempts == [1, 2, 3]
    assert [e.type for e in reactions] == [orch.TASK_FAILED]
    assert reactions[0].payload["reason"] == "trap: unreachable (after 3 attempts)"
    assert state.jobs == {}


def earlier_run_states() -> dict[str, SchedulerState]:
    """t-1's first run failed and was retried: as retrying, then as attempt 2 (and started)."""
    state = running("t-1", max_retries=2, retry_backoff_ms=1000)
    retrying, _ = fold(state, "t-1", run_failed("t-1"), NOW)
    second, _ = settle(retrying, NOW + 1000)
    assert second.jobs["t-1"]["run_id"] == "t-1.2"
    second_started, _ = fold(second, "t-1", started("t-1", 2), NOW + 1001)
    return {"retrying": retrying, "second": second, "second started": second_started}


@pytest.mark.parametrize("which", ["retrying", "second", "second started"])
@pytest.mark.parametrize("report", [started, run_succeeded, run_failed], ids=lambda f: f.__name__)
def test_reports_about_an_earlier_run_are_ignored(which: str, report: Any) -> None:
    state = earlier_run_states()[which]
    assert orch.on_event(state, "t-1", report("t-1", 1), NOW + 2000) == (state, [])


@pytest.mark.parametrize("report", [started, run_succeeded, run_failed], ids=lambda f: f.__name__)
def test_run_reports_about_a_queued_job_are_ignored(report: Any) -> None:
    state = queue("t-1")
    assert orch.on_event(state, "t-1", report("t-1", 1), NOW) == (state, [])


def test_other_task_events_change_nothing() -> None:
    state = running("t-1")
    others = [
        Event("aion.task.TaskAuthorized", {"task_id": "t-1", "enforcement_id": "e"}),
        Event("aion.run.RunProgress", {"task_id": "t-1", "run_id": "t-1.1", "sequence": 1,
                                       "percent": 50.0, "message": "half"}),
        Event("aion.artifact.ArtifactStored", {"task_id": "t-1", "run_id": "t-1.1"}),
    ]  # fmt: skip
    for event in others:
        assert orch.on_event(state, "t-1", event, NOW + 1) == (state, [])


def test_the_endings_are_the_five_terminal_task_events() -> None:
    endings = {orch.TASK_SUCCEEDED, orch.TASK_FAILED, orch.TASK_TIMED_OUT, orch.TASK_CANCELLED,
               orch.TASK_REJECTED}  # fmt: skip
    assert endings == orch.ENDINGS


@pytest.mark.parametrize("kind", sorted(orch.ENDINGS))
@pytest.mark.parametrize("phase", ["queued", "active", "started", "retrying"])
def test_a_task_ending_removes_the_job_and_frees_its_slot(kind: str, phase: str) -> None:
    limits = Limits(max_concurrent_tasks=1)
    state = queue("t-1", max_retries=1, retry_backoff_ms=10**6)
    if phase != "queued":
        state, _ = settle(state, NOW, limits)
    if phase == "started":
        state, _ = fold(state, "t-1", started("t-1"), NOW)
    if phase == "retrying":
        state, _ = fold(state, "t-1", run_failed("t-1"), NOW)
    state = queue("t-2", state=state)
    if phase in ("active", "started"):
        assert settle(state, NOW, limits)[1] == []  # t-2 waits for t-1's slot
    before = frozen(state)
    after, reactions = orch.on_event(state, "t-1", ending(kind, "t-1"), NOW + 1)
    assert reactions == []
    assert frozen(state) == before
    assert list(after.jobs) == ["t-2"]
    assert after.seq == state.seq and after.starts == state.starts
    _, emitted = settle(after, NOW + 1, limits)
    assert short(emitted) == [("t-2", "TaskScheduled")]


# --- watchdog ---------------------------------------------------------------------------------


def test_a_started_run_silent_for_timeout_and_grace_is_failed_as_worker_lost() -> None:
    state = running("t-1", timeout_ms=5000)
    state, _ = fold(state, "t-1", started("t-1"), NOW + 100)
    assert orch.advance(state, NOW + 100 + 5000 + GRACE - 1, LIMITS) == []
    assert orch.advance(state, NOW + 100 + 5000 + GRACE, LIMITS) == [
        ("t-1", Event(orch.RUN_FAILED,
                      {"task_id": "t-1", "run_id": "t-1.1", "reason": "worker_lost",
                       "message": "no report from the kernel worker for 15000 ms",
                       "fuel_used": 0, "duration_ms": 15000})),
    ]  # fmt: skip


def test_the_watchdog_uses_the_given_grace() -> None:
    state = running("t-1", timeout_ms=5000)
    state, _ = fold(state, "t-1", started("t-1"), NOW)
    assert orch.advance(state, NOW + 4999, LIMITS, grace_ms=0) == []
    due = orch.advance(state, NOW + 5000, LIMITS, grace_ms=0)
    assert short(due) == [("t-1", "RunFailed")]
    assert orch.advance(state, NOW + 5000, LIMITS, grace_ms=1) == []


def test_a_scheduled_run_that_never_started_is_never_given_up() -> None:
    state = running("t-1", timeout_ms=5000)
    assert orch.advance(state, NOW + 10**10, LIMITS) == []
    assert orch.next_due(state, LIMITS, NOW) is None


def test_a_lost_worker_is_retried_like_any_failure_then_fails_the_task() -> None:
    state = running("t-1", "t-2", max_retries=1, retry_backoff_ms=0, timeout_ms=5000)
    state, _ = fold(state, "t-1", started("t-1"), NOW)
    state, emitted = settle(state, NOW + 5000 + GRACE)
    assert short(emitted) == [("t-1", "RunFailed"), ("t-1", "TaskRetryScheduled"),
                              ("t-1", "TaskScheduled")]  # fmt: skip
    assert emitted[1][1].payload["reason"] == (
        "worker_lost: no report from the kernel worker for 15000 ms"
    )
    assert emitted[2][1].payload["run_id"] == "t-1.2"
    state, _ = fold(state, "t-1", started("t-1", 2), NOW + 20_000)
    state, emitted = settle(state, NOW + 20_000 + 5000 + GRACE)
    assert short(emitted) == [("t-1", "RunFailed"), ("t-1", "TaskFailed")]
    assert emitted[1][1].payload["reason"].endswith("ms (after 2 attempts)")
    assert phases(state) == {"t-2": "active"}  # never started, never given up


def test_progress_reports_do_not_reset_the_watchdog() -> None:
    state = running("t-1", timeout_ms=5000)
    state, _ = fold(state, "t-1", started("t-1"), NOW)
    progress = Event("aion.run.RunProgress", {"task_id": "t-1", "run_id": "t-1.1"})
    state, _ = fold(state, "t-1", progress, NOW + 10_000)
    assert short(orch.advance(state, NOW + 15_000, LIMITS)) == [("t-1", "RunFailed")]


def test_a_round_that_ends_runs_admits_nothing_until_the_next_round() -> None:
    state = running("t-1", timeout_ms=5000)
    state = queue("t-2", deadline_ms=NOW + 1, state=state)
    state = queue("t-3", state=state)
    state, _ = fold(state, "t-1", started("t-1"), NOW)
    limits = Limits(max_concurrent_tasks=1)
    due = orch.advance(state, NOW + 15_000, limits)
    assert short(due) == [("t-1", "RunFailed"), ("t-2", "TaskTimedOut")]
    state, emitted = settle(state, NOW + 15_000, limits)
    assert short(emitted) == [("t-1", "RunFailed"), ("t-1", "TaskFailed"),
                              ("t-2", "TaskTimedOut"), ("t-3", "TaskScheduled")]  # fmt: skip


# --- deadlines --------------------------------------------------------------------------------


def phase_states(deadline_ms: int) -> dict[str, SchedulerState]:
    queued = queue("t-1", deadline_ms=deadline_ms, max_retries=1, retry_backoff_ms=10**9)
    active, _ = settle(queued, NOW)
    started_, _ = fold(active, "t-1", started("t-1"), NOW)
    retrying, _ = fold(started_, "t-1", run_failed("t-1"), NOW)
    waiting = queue("t-1", deadline_ms=deadline_ms, state=running("t-0", max_concurrency=1),
                    max_concurrency=1)  # fmt: skip
    return {"queued": queued, "active": active, "started": started_, "retrying": retrying,
            "waiting on its agent": waiting}  # fmt: skip


@pytest.mark.parametrize(
    "phase", ["queued", "active", "started", "retrying", "waiting on its agent"]
)
def test_a_job_past_its_deadline_times_out_in_any_phase(phase: str) -> None:
    deadline = NOW + 3000  # before the watchdog (NOW + 15 s)
    state = phase_states(deadline)[phase]
    for limits in (LIMITS, Limits(active=False)):
        assert [e for _, e in orch.advance(state, deadline - 1, limits)
                if e.type == orch.TASK_TIMED_OUT] == []  # fmt: skip
        due = orch.advance(state, deadline, limits)
        assert ("t-1", Event(orch.TASK_TIMED_OUT, {"task_id": "t-1"})) in due
    after, _ = settle(state, deadline + 1)
    assert "t-1" not in after.jobs


def test_the_deadline_wins_over_the_watchdog() -> None:
    state = running("t-1", timeout_ms=1000)
    state = replace(state, jobs={"t-1": {**state.jobs["t-1"], "deadline_ms": NOW + 20_000}})
    state, _ = fold(state, "t-1", started("t-1"), NOW)
    assert short(orch.advance(state, NOW + 20_000, LIMITS)) == [("t-1", "TaskTimedOut")]


def test_deadlines_fall_due_in_queue_order() -> None:
    state = queue("t-2", "t-1", "t-3", deadline_ms=NOW)
    due = orch.advance(state, NOW, LIMITS)
    assert short(due) == [("t-2", "TaskTimedOut"), ("t-1", "TaskTimedOut"),
                          ("t-3", "TaskTimedOut")]  # fmt: skip


# --- next_due ---------------------------------------------------------------------------------


def test_nothing_is_due_without_deadlines_watchdogs_retries_or_a_full_window() -> None:
    assert orch.next_due(SchedulerState(), LIMITS, NOW) is None
    assert orch.next_due(queue("t-1", "t-2"), LIMITS, NOW) is None
    assert orch.next_due(running("t-1"), LIMITS, NOW) is None
    limited = settle(queue("t-1", "t-2", max_concurrency=1), NOW, Limits(tasks_per_minute=5))[0]
    assert orch.next_due(limited, Limits(tasks_per_minute=5), NOW) is None  # waits on its agent


def test_next_due_is_a_deadline() -> None:
    state = queue("t-1", deadline_ms=NOW + 500)
    assert orch.next_due(state, LIMITS, NOW) == NOW + 500


def test_next_due_is_the_watchdog_of_a_started_run() -> None:
    state = running("t-1", timeout_ms=5000)
    state, _ = fold(state, "t-1", started("t-1"), NOW + 7)
    assert orch.next_due(state, LIMITS, NOW + 7) == NOW + 7 + 5000 + GRACE
    assert orch.next_due(state, LIMITS, NOW + 7, grace_ms=3) == NOW + 7 + 5000 + 3


def test_next_due_is_a_retry_time() -> None:
    state = running("t-1", max_retries=1, retry_backoff_ms=2500)
    state, _ = fold(state, "t-1", started("t-1"), NOW)
    state, _ = fold(state, "t-1", run_failed("t-1"), NOW + 10)
    assert orch.next_due(state, LIMITS, NOW + 10) == NOW + 2510  # the old run's watchdog is gone


def test_next_due_is_the_rate_window_opening_for_queued_tasks() -> None:
    limits = Limits(tasks_per_minute=2)
    state, _ = settle(queue("t-1"), NOW, limits)
    state, _ = settle(queue("t-2", "t-3", state=state), NOW + 10_000, limits)
    assert phases(state) == {"t-1": "active", "t-2": "active", "t-3": "queued"}
    assert orch.next_due(state, limits, NOW + 10_000) == NOW + WINDOW
    crowded = replace(state, starts=(NOW + 20_000, NOW, NOW + 10_000))
    assert orch.next_due(crowded, limits, NOW + 20_000) == NOW + 10_000 + WINDOW  # 2nd newest
    stale = replace(state, starts=(NOW - 2 * WINDOW, NOW - 2 * WINDOW))
    assert orch.next_due(stale, limits, NOW + 10_000) is None  # starts outside the window
    no_queue, _ = fold(state, "t-3", ending(orch.TASK_CANCELLED, "t-3"), NOW + 10_000)
    assert orch.next_due(no_queue, limits, NOW + 10_000) is None  # nobody waits on the window


def test_next_due_is_the_minimum_of_everything_due() -> None:
    limits = Limits(tasks_per_minute=3)
    state = queue("d-1", deadline_ms=NOW + 40_000)
    state = queue("w-1", state=state, timeout_ms=1000)
    state = queue("r-1", state=state, max_retries=1, retry_backoff_ms=30_000)
    state, _ = settle(state, NOW, limits)
    state = queue("q-1", state=state)
    state, _ = fold(state, "w-1", started("w-1"), NOW)
    state, _ = fold(state, "r-1", run_failed("r-1"), NOW)
    times = {"deadline": NOW + 40_000, "watchdog": NOW + 1000 + GRACE, "retry": NOW + 30_000,
             "window": NOW + WINDOW}  # fmt: skip
    assert orch.next_due(state, limits, NOW) == min(times.values()) == times["watchdog"]
    state, _ = settle(state, times["watchdog"], limits)  # w-1 fails (no retries left)
    assert orch.next_due(state, limits, times["watchdog"]) == times["retry"]
    state, _ = settle(state, times["retry"], limits)  # r-1 runs again
    assert orch.next_due(state, limits, times["retry"]) == times["deadline"]
    state, _ = settle(state, times["deadline"], limits)  # d-1 times out
    assert orch.next_due(state, limits, times["deadline"]) == times["window"]
    state, emitted = settle(state, times["window"], limits)
    assert short(emitted) == [("q-1", "TaskScheduled")]
    assert orch.next_due(state, limits, times["window"]) is None


def test_next_due_does_not_change_the_state() -> None:
    state = replace(queue("t-1"), starts=(NOW + 5, NOW))
    before = frozen(state)
    assert orch.next_due(state, Limits(tasks_per_minute=1), NOW + 5) == NOW + 5 + WINDOW
    assert frozen(state) == before


@pytest.mark.parametrize("blocked_by", ["max_concurrent_tasks", "max_concurrency", "suspension"])
def test_once_settled_next_due_is_after_now(blocked_by: str) -> None:
    limits = Limits(max_concurrent_tasks=1 if blocked_by == "max_concurrent_tasks" else 10)
    state = queue("t-1", "t-2", max_retries=1, retry_backoff_ms=1000, max_concurrency=1)
    state, _ = settle(state, NOW, limits)
    state, _ = fold(state, "t-1", run_failed("t-1"), NOW)  # retry at NOW + 1000
    state, emitted = settle(state, NOW, limits)
    assert short(emitted) == [("t-2", "TaskScheduled")]  # t-2 takes the freed slot
    now = NOW + 1000
    if blocked_by == "suspension":  # t-2 ends: only the suspension holds t-1 back
        state, _ = fold(state, "t-2", ending(orch.TASK_SUCCEEDED, "t-2"), now)
        limits = Limits(active=False)
    state, emitted = settle(state, now, limits)
    assert emitted == []  # t-1's retry is due but cannot run until t-2 ends (an event)
    due = orch.next_due(state, limits, now)
    assert due is None or due > now, due


# --- prune, dump and load ---------------------------------------------------------------------


def test_prune_forgets_starts_that_left_the_window() -> None:
    state = replace(queue("t-1"), starts=(NOW - WINDOW, NOW - WINDOW + 1, NOW, NOW + 1))
    pruned = orch.prune(state, NOW)
    assert pruned.starts == (NOW - WINDOW + 1, NOW, NOW + 1)
    assert pruned.jobs == state.jobs and pruned.seq == state.seq
    assert orch.prune(pruned, NOW) is pruned  # nothing to forget: the same state
    assert orch.prune(state, NOW + WINDOW + 1).starts == ()


def test_pruning_does_not_change_what_is_admitted() -> None:
    limits = Limits(tasks_per_minute=2)
    state, _ = settle(queue("t-1", "t-2", "t-3", "t-4"), NOW, limits)
    for now in (NOW + 1, NOW + WINDOW - 1, NOW + WINDOW):
        assert orch.advance(state, now, limits) == orch.advance(orch.prune(state, now), now, limits)


def mixed_state() -> SchedulerState:
    state = queue("q-1", deadline_ms=NOW + 99, agent="alpha", max_concurrency=1)
    state = queue("a-1", "s-1", "r-1", agent="beta", max_retries=2, state=state)
    state, _ = settle(state, NOW)
    state, _ = fold(state, "s-1", started("s-1"), NOW + 1)
    state, _ = fold(state, "r-1", run_failed("r-1"), NOW + 2)
    assert phases(state) == {"q-1": "active", "a-1": "active", "s-1": "active",
                             "r-1": "retrying"}  # fmt: skip
    return queue("q-2", agent="alpha", max_concurrency=1, state=state)


def test_dump_and_load_round_trip_through_json() -> None:
    state = mixed_state()
    document = json.loads(json.dumps(state.dump()))
    loaded = SchedulerState.load(document)
    assert loaded == state
    assert isinstance(loaded.starts, tuple)
    assert orch.advance(loaded, NOW + 3000, LIMITS) == orch.advance(state, NOW + 3000, LIMITS)
    assert orch.next_due(loaded, LIMITS, NOW) == orch.next_due(state, LIMITS, NOW)


@pytest.mark.parametrize("document", [None, {}])
def test_loading_nothing_is_the_empty_state(document: dict[str, Any] | None) -> None:
    assert SchedulerState.load(document) == SchedulerState()
    assert SchedulerState().dump() == {"jobs": {}, "seq": 0, "starts": []}


def test_a_loaded_state_does_not_share_its_jobs_with_the_document() -> None:
    document = json.loads(json.dumps(mixed_state().dump()))
    loaded = SchedulerState.load(document)
    document["jobs"]["q-1"]["phase"] = "retrying"
    document["jobs"]["x"] = {}
    assert loaded.jobs["q-1"]["phase"] == "active"
    assert "x" not in loaded.jobs


# --- the records on the wire ------------------------------------------------------------------

EVENT_ENVELOPE = {
    "event_id": "e",
    "event_type": "t",
    "command_id": "c",
    "correlation_id": "c",
    "causation_id": "c",
    "tenant_id": "acme",
    "aggregate_type": "task",
    "aggregate_id": "acme/t-1",
    "aggregate_version": 1,
    "occurred_at": NOW,
    "actor": "test",
    "traceparent": None,
    "tracestate": None,
}


def orchestrator_events() -> list[Event]:
    """One of every event the orchestrator decides."""
    state = running("t-1", "t-2", max_retries=1, retry_backoff_ms=0)
    state = queue("t-3", deadline_ms=NOW + 1, state=state)
    state, _ = fold(state, "t-1", started("t-1"), NOW)
    _, emitted = settle(state, NOW + 5000 + GRACE)  # lost, retried, rescheduled; t-3 timed out
    _, succeeded = orch.on_event(state, "t-2", run_succeeded("t-2"), NOW)
    _, failed = orch.on_event(running("t-9"), "t-9", run_failed("t-9"), NOW)
    events = [event for _, event in emitted] + succeeded + failed
    assert sorted({e.type for e in events}) == sorted(
        {orch.TASK_SCHEDULED, orch.TASK_RETRY_SCHEDULED, orch.TASK_SUCCEEDED, orch.TASK_FAILED,
         orch.TASK_TIMED_OUT, orch.RUN_FAILED}
    )  # fmt: skip
    return events


@pytest.mark.parametrize("event", orchestrator_events(), ids=lambda e: e.type)
def test_every_event_the_orchestrator_decides_serialises_with_its_avro_schema(
    event: Event,
) -> None:
    rec = catalog.record(event.type)
    assert rec.is_event
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, rec.parsed, {"envelope": EVENT_ENVELOPE, **event.payload})
    buf.seek(0)
    back: Any = fastavro.schemaless_reader(buf, rec.parsed)
    back.pop("envelope")
    assert back == event.payload


# --- doubtful details -------------------------------------------------------------------------


def test_a_failure_message_is_kept_whole_in_the_reason() -> None:
    state = running("t-1")
    _, reactions = orch.on_event(
        state, "t-1", run_failed("t-1", message="unexpected end of input:"), NOW
    )
    assert reactions[0].payload["reason"] == "trap: unexpected end of input: (after 1 attempt)"


# --- property: a simulated tenant keeps every limit -------------------------------------------

QUOTAS = st.tuples(
    st.integers(1, 3),  # max_concurrency
    st.integers(0, 2),  # max_retries
    st.sampled_from([0, 500, 20_000, 400_000]),  # retry_backoff_ms
    st.sampled_from([1000, 30_000]),  # timeout_ms
)
STEP = st.one_of(
    st.tuples(st.just("admit"), st.integers(0, 2), st.one_of(st.none(), st.integers(0, 200_000))),
    st.tuples(st.just("admit many"), st.integers(0, 2), st.integers(2, 4)),
    st.tuples(st.just("readmit"), st.integers(0, 10**6), st.none()),
    st.tuples(st.just("advance"), st.integers(0, 3), st.sampled_from([1, 999, 20_000, 61_000])),
    st.tuples(st.just("report"), st.sampled_from(["started", "succeeded", "failed", "stale"]),
              st.integers(0, 10**6)),
    st.tuples(st.just("cancel"), st.integers(0, 10**6), st.none()),
    st.tuples(st.just("suspend"), st.booleans(), st.none()),
)  # fmt: skip


def check_invariants(
    state: SchedulerState,
    limits: Limits,
    quotas: dict[str, tuple[int, int, int, int]],
    firsts: list[int],
) -> None:
    assert state.count("active") <= limits.max_concurrent_tasks
    for agent, (max_concurrency, max_retries, _, _) in quotas.items():
        assert state.count("active", agent) <= max_concurrency, agent
        for job in state.jobs.values():
            if job["agent_name"] == agent:
                assert job["attempt"] <= max_retries + 1
    for task_id, job in state.jobs.items():
        assert job["phase"] in ("queued", "active", "retrying"), task_id
        assert (job["attempt"] == 0) == (job["phase"] == "queued"), task_id
        assert (job["run_id"] is None) == (job["phase"] == "queued"), task_id
        if job["phase"] != "queued":
            assert job["run_id"] == orch.run_id_for(task_id, job["attempt"])
        if job["phase"] == "retrying":
            assert job["retry_at_ms"] is not None
    assert sum(state.count(p) for p in ("queued", "active", "retrying")) == len(state.jobs)
    assert len({job["seq"] for job in state.jobs.values()}) == len(state.jobs)
    for i, start in enumerate(firsts):  # firsts is in time order
        in_window = [t for t in firsts[i:] if t < start + WINDOW]
        assert len(in_window) <= limits.tasks_per_minute, (start, firsts)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(QUOTAS, min_size=2, max_size=3),
    st.integers(1, 4),
    st.integers(1, 4),
    st.lists(STEP, max_size=40),
)
def test_a_simulated_tenant_keeps_every_limit(
    agent_quotas: list[tuple[int, int, int, int]],
    max_concurrent_tasks: int,
    tasks_per_minute: int,
    steps: list[tuple[Any, Any, Any]],
) -> None:
    quotas = {f"agent-{i}": q for i, q in enumerate(agent_quotas)}
    agents = sorted(quotas)
    limits = Limits(max_concurrent_tasks, tasks_per_minute)
    now = NOW
    state = SchedulerState()
    firsts: list[int] = []  # when each first attempt was scheduled
    admitted: list[str] = []
    for i, (kind, a, b) in enumerate(steps):
        before, before_text = state, frozen(state)
        if kind == "admit":
            agent = agents[a % len(agents)]
            mc, mr, backoff, timeout = quotas[agent]
            m = manifest(max_concurrency=mc, max_retries=mr, retry_backoff_ms=backoff,
                         timeout_ms=timeout)  # fmt: skip
            deadline = None if b is None else now + b
            state = orch.admit(state, f"t-{i}", agent, "1.0.0", m, deadline)
            admitted.append(f"t-{i}")
        elif kind == "admit many":  # several tasks of one agent wait for the same round
            agent = agents[a % len(agents)]
            mc, mr, backoff, timeout = quotas[agent]
            m = manifest(max_concurrency=mc, max_retries=mr, retry_backoff_ms=backoff,
                         timeout_ms=timeout)  # fmt: skip
            for j in range(b):
                state = orch.admit(state, f"t-{i}-{j}", agent, "1.0.0", m, None)
                admitted.append(f"t-{i}-{j}")
        elif kind == "readmit" and admitted:
            task_id = admitted[a % len(admitted)]
            if task_id in state.jobs:  # the plan admits a task once, on TaskAuthorized
                assert orch.admit(state, task_id, agents[0], "2.0.0", manifest(), None) is state
        elif kind == "advance":
            for _ in range(a):  # several ticks spaced b apart
                now += b
                state, emitted = settle(state, now, limits)
                firsts += [
                    now
                    for _, e in emitted
                    if e.type == orch.TASK_SCHEDULED and e.payload["attempt"] == 1
                ]
                check_invariants(state, limits, quotas, firsts)
        elif kind == "report":
            active = sorted(t for t, job in state.jobs.items() if job["phase"] == "active")
            if active:
                task_id = active[b % len(active)]
                attempt = int(state.jobs[task_id]["attempt"])
                if a == "stale":
                    event = run_succeeded(task_id, attempt - 1)
                else:
                    report = {"started": started, "succeeded": run_succeeded, "failed": run_failed}
                    event = report[a](task_id, attempt)
                after, reactions = fold(state, task_id, event, now)
                if a == "stale":
                    assert (after, reactions) == (state, [])
                if a == "succeeded":
                    assert task_id not in after.jobs
                    assert [e.type for e in reactions] == [orch.TASK_SUCCEEDED]
                if a == "failed":
                    assert [e.type for e in reactions] in (
                        [orch.TASK_RETRY_SCHEDULED], [orch.TASK_FAILED],
                    )  # fmt: skip
                    assert (task_id in after.jobs) == (reactions[0].type != orch.TASK_FAILED)
                state = after
        elif kind == "cancel" and state.jobs:
            task_id = sorted(state.jobs)[a % len(state.jobs)]
            state, reactions = fold(state, task_id, ending(orch.TASK_CANCELLED, task_id), now)
            assert task_id not in state.jobs and reactions == []
        elif kind == "suspend":
            limits = replace(limits, active=not a)
        assert frozen(before) == before_text, i  # no function changes the state it is given
        # Every command that touches the scheduler ends with advance (streams/plan.py).
        state, emitted = settle(state, now, limits)
        firsts += [now for _, e in emitted
                   if e.type == orch.TASK_SCHEDULED and e.payload["attempt"] == 1]  # fmt: skip
        check_invariants(state, limits, quotas, firsts)
        assert SchedulerState.load(json.loads(json.dumps(state.dump()))) == state
        # Nothing happens before next_due, so a timer waking then misses nothing.
        due = orch.next_due(state, limits, now)
        quiet_until = now + 10**9 if due is None else due - 1
        if quiet_until >= now:
            assert orch.advance(state, quiet_until, limits) == [], (i, due)
