"""The orchestrator's rules, driven the way the command processor drives it: commands planned
over a dict of documents (``tests.unit.planning``), every emission encoded with its schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands import orchestration as orch
from commands.model import scoped_id
from commands.timer_wheel import PAGE, TimerWheel, new_wheel
from streams.tenant_stage import scheduler_key
from tests.unit.planning import (
    NOW,
    Store,
    counters,
    deploy,
    failed,
    manifest,
    records,
    report,
    submit,
    succeeded,
    task_status,
    tenant,
    tick,
)

GRACE = 1000  # the planning helpers' watchdog grace


def limited(**limits: int) -> Store:
    store = Store()
    tenant(store, **limits)
    return store


def scheduled_keys(plan: Any) -> list[str]:
    return [e.key for e in plan.emissions if e.record == "aion.kernel.DispatchRun"]


def statuses(store: Store, *task_ids: str) -> list[str]:
    return [task_status(store, t) for t in task_ids]


def due(store: Store) -> int | None:
    document = store.read(scheduler_key("acme")) or {}
    value = document.get("due_ms")
    return None if value is None else int(value)


def suspend(store: Store, suspended: bool = True) -> Any:
    command = "aion.tenant.SuspendTenant" if suspended else "aion.tenant.ReinstateTenant"
    plan = store.run(command, "acme", {"reason": "test"})
    assert records(plan)[0].startswith("Tenant")
    return plan


# --- admission --------------------------------------------------------------------------------


def test_limits_of_a_tenant_summary() -> None:
    assert orch.Limits.of(None) == orch.Limits()
    summary = {"status": "suspended", "limits": {"max_concurrent_tasks": 3}}
    assert orch.Limits.of(summary) == orch.Limits(3, 600, False)


def test_tasks_are_scheduled_first_come_first_served_within_max_concurrent_tasks() -> None:
    store = limited(max_concurrent_tasks=2)
    deploy(store, max_concurrency=2)
    for task_id in ("t-b", "t-a", "t-c", "t-d"):
        submit(store, task_id)
    assert statuses(store, "t-b", "t-a", "t-c", "t-d") == [
        "scheduled", "scheduled", "authorized", "authorized",
    ]  # fmt: skip
    assert counters(store) == {"queued": 2, "active": 2, "retrying": 0}
    assert scheduled_keys(succeeded(store, "t-a")) == ["acme/t-c.1"]  # arrival, not name order
    assert scheduled_keys(succeeded(store, "t-b")) == ["acme/t-d.1"]
    assert counters(store) == {"queued": 0, "active": 2, "retrying": 0}


def test_a_full_agent_does_not_block_other_agents_tasks_behind_it() -> None:
    store = limited(max_concurrent_tasks=3)
    deploy(store, "slow", max_concurrency=1)
    deploy(store, "fast", max_concurrency=2)
    submit(store, "s-1", agent="slow")
    submit(store, "s-2", agent="slow")
    submit(store, "f-1", agent="fast")
    assert statuses(store, "s-1", "s-2", "f-1") == ["scheduled", "authorized", "scheduled"]


def test_a_parked_task_goes_before_younger_tasks_once_its_agent_has_a_slot() -> None:
    store = limited(max_concurrent_tasks=2)
    deploy(store, "a", max_concurrency=1)
    deploy(store, "b", max_concurrency=2)
    submit(store, "a-1", agent="a")
    submit(store, "a-2", agent="a")  # parked: a is full
    submit(store, "b-1", agent="b")  # the tenant is full now
    submit(store, "b-2", agent="b")
    assert statuses(store, "a-2", "b-2") == ["authorized", "authorized"]
    assert scheduled_keys(succeeded(store, "a-1")) == ["acme/a-2.1"]
    assert scheduled_keys(succeeded(store, "b-1")) == ["acme/b-2.1"]


def test_an_agents_parked_tasks_keep_their_order_behind_each_other() -> None:
    store = limited(max_concurrent_tasks=10)
    deploy(store, max_concurrency=1)
    for n in range(1, 5):
        submit(store, f"t-{n}")
    order = []
    for n in range(1, 5):
        order += scheduled_keys(succeeded(store, f"t-{n}"))
    assert order == ["acme/t-2.1", "acme/t-3.1", "acme/t-4.1"]


def test_tasks_per_minute_caps_first_attempts_in_a_sliding_window() -> None:
    store = limited(max_concurrent_tasks=10, tasks_per_minute=2)
    deploy(store, max_concurrency=10)
    submit(store, "t-1")
    store.run("aion.task.Tick", "acme", {"due_ms": 0}, issued_at=NOW + 30_000)
    submit(store, "t-2")
    submit(store, "t-3")
    assert statuses(store, "t-1", "t-2", "t-3") == ["scheduled", "scheduled", "authorized"]
    opens = due(store)
    assert opens is not None and NOW + 60_000 < opens <= NOW + 61_000  # when t-1's start left
    assert records(tick(store, opens - 1)) == []
    assert scheduled_keys(tick(store, opens)) == ["acme/t-3.1"]


def test_retries_are_exempt_from_the_rate_window_and_go_before_queued_tasks() -> None:
    store = limited(max_concurrent_tasks=1, tasks_per_minute=1)
    deploy(store, max_concurrency=1, max_retries=1, retry_backoff_ms=0)
    submit(store, "t-1")
    submit(store, "t-2")
    plan = failed(store, "t-1")  # backoff 0: the retry is due at once, before t-2
    assert records(plan) == ["RunFailed", "TaskRetryScheduled", "TaskScheduled", "DispatchRun"]
    assert scheduled_keys(plan) == ["acme/t-1.2"]
    assert task_status(store, "t-2") == "authorized"


def test_a_retry_waits_for_its_time_then_for_a_slot() -> None:
    store = limited(max_concurrent_tasks=1)
    deploy(store, max_concurrency=1, max_retries=1, retry_backoff_ms=5000)
    submit(store, "t-1")
    plan = failed(store, "t-1")
    retry_at = plan.emissions[1].value["retry_at_ms"]
    submit(store, "t-2")  # the slot is free during the backoff
    assert task_status(store, "t-2") == "scheduled"
    when = due(store)
    assert when is not None and retry_at <= when < retry_at + 1000
    assert records(tick(store, when)) == []  # due, but no slot
    assert counters(store) == {"queued": 0, "active": 1, "retrying": 1}
    assert scheduled_keys(succeeded(store, "t-2")) == ["acme/t-1.2"]


def test_a_suspended_tenant_schedules_nothing_until_reinstated() -> None:
    store = limited(max_concurrent_tasks=1)
    deploy(store)
    submit(store, "t-1")
    submit(store, "t-2")
    suspend(store)
    report(store, "RunStarted", "t-1", worker="w")
    assert scheduled_keys(succeeded(store, "t-1")) == []
    assert task_status(store, "t-2") == "authorized"
    # Reinstated, its queue moves at once (not at the next tick).
    assert scheduled_keys(suspend(store, False)) == ["acme/t-2.1"]


def test_a_suspended_tenant_still_times_out_and_gives_up_silent_workers() -> None:
    store = limited(max_concurrent_tasks=1)
    deploy(store, timeout_ms=10_000)
    submit(store, "t-1")
    submit(store, "t-2", deadline_ms=NOW + 5_000)
    report(store, "RunStarted", "t-1", worker="w")
    suspend(store)
    plan = tick(store, NOW + 5_000)
    assert records(plan) == ["TaskTimedOut"]
    plan = tick(store, NOW + 10_000 + GRACE + 1000)
    assert records(plan) == ["RunFailed", "TaskFailed"]
    assert plan.emissions[0].value["reason"] == "worker_lost"


# --- timers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["authorized", "scheduled", "running", "retrying"])
def test_a_task_past_its_deadline_times_out_in_any_phase(phase: str) -> None:
    store = limited(max_concurrent_tasks=1)
    deploy(store, max_retries=1, retry_backoff_ms=60_000, timeout_ms=60_000)
    deadline = NOW + 10_000
    if phase == "authorized":
        submit(store, "blocker")
    submit(store, "t-1", deadline_ms=deadline)
    if phase in ("running", "retrying"):
        report(store, "RunStarted", "t-1", worker="w")
    if phase == "retrying":
        failed(store, "t-1")
    assert task_status(store, "t-1") == phase
    assert records(tick(store, deadline - 1)) == []  # never early
    plan = tick(store, deadline)
    assert records(plan)[0] == "TaskTimedOut"
    assert task_status(store, "t-1") == "timed_out"


def test_a_started_run_silent_for_timeout_and_grace_is_failed_as_worker_lost() -> None:
    store = limited()
    deploy(store, timeout_ms=1000, max_retries=1, retry_backoff_ms=0)
    submit(store, "t-1")
    report(store, "RunStarted", "t-1", worker="w")
    started = store.now
    assert records(tick(store, started + 1000 + GRACE - 1)) == []
    plan = tick(store, started + 1000 + GRACE + 1000)
    assert records(plan) == [
        "RunFailed", "TaskRetryScheduled", "TaskScheduled", "DispatchRun",
    ]  # fmt: skip
    assert plan.emissions[0].value["reason"] == "worker_lost"
    assert "no report from the kernel worker" in plan.emissions[0].value["message"]


def test_a_scheduled_run_that_never_started_is_never_given_up() -> None:
    store = limited()
    deploy(store, timeout_ms=1000)
    submit(store, "t-1")
    assert due(store) is None
    assert records(tick(store, NOW + 10**7)) == []


def test_a_watchdog_of_a_run_that_reported_is_stale_and_fires_nothing() -> None:
    store = limited()
    deploy(store, timeout_ms=1000)
    submit(store, "t-1")
    report(store, "RunStarted", "t-1", worker="w")
    succeeded(store, "t-1")
    assert records(tick(store, NOW + 10_000)) == []
    wheel = store.read(scheduler_key("acme"))["state"]["wheel"]  # type: ignore[index]
    assert wheel["pending"] == 0 and wheel["next_s"] is None


# --- reports and endings ----------------------------------------------------------------------


def test_reports_about_an_earlier_run_change_nothing() -> None:
    store = limited()
    deploy(store, max_retries=1, retry_backoff_ms=0)
    submit(store, "t-1")
    failed(store, "t-1")
    assert records(succeeded(store, "t-1", attempt=1)) == ["RunSucceeded"]
    assert records(failed(store, "t-1", attempt=1)) == ["RunFailed"]
    assert task_status(store, "t-1") == "scheduled"
    assert counters(store) == {"queued": 0, "active": 1, "retrying": 0}


def test_a_task_makes_exactly_max_retries_plus_one_attempts() -> None:
    store = limited()
    deploy(store, max_retries=2, retry_backoff_ms=0)
    submit(store, "t-1")
    assert records(failed(store, "t-1", 1))[-1] == "DispatchRun"
    assert records(failed(store, "t-1", 2))[-1] == "DispatchRun"
    plan = failed(store, "t-1", 3)
    assert records(plan) == ["RunFailed", "TaskFailed"]
    assert plan.emissions[1].value["reason"] == "trap: unreachable (after 3 attempts)"


def test_cancelling_queued_and_running_tasks_frees_each_slot_once() -> None:
    store = limited(max_concurrent_tasks=1)
    deploy(store)
    for task_id in ("t-1", "t-2", "t-3"):
        submit(store, task_id)
    store.run("aion.task.CancelTask", "acme/t-2", {"reason": "queued"})
    assert counters(store) == {"queued": 1, "active": 1, "retrying": 0}
    plan = store.run("aion.task.CancelTask", "acme/t-1", {"reason": "running"})
    assert scheduled_keys(plan) == ["acme/t-3.1"]  # t-2's entry is dropped on the way
    assert counters(store) == {"queued": 0, "active": 1, "retrying": 0}
    assert succeeded(store, "t-1") is not None  # a late report of a cancelled task
    assert counters(store) == {"queued": 0, "active": 1, "retrying": 0}


def test_a_dispatch_carries_the_agents_manifest_as_it_stands_when_scheduled() -> None:
    store = limited(max_concurrent_tasks=1)
    deploy(store, fuel=1000)
    submit(store, "t-1")
    submit(store, "t-2")
    update = {"manifest": {**manifest(fuel=2000), "version": "1.1.0"}}
    store.run("aion.agent.UpdateAgent", scoped_id("acme", "echo"), update)
    (dispatch,) = [e for e in succeeded(store, "t-1").emissions if e.record.endswith("Run")][-1:]
    assert dispatch.value["agent_version"] == "1.1.0"
    assert dispatch.value["manifest"]["quotas"]["fuel"] == 2000


def test_a_document_stored_before_the_bounded_design_is_taken_over() -> None:
    store = limited(max_concurrent_tasks=1)
    deploy(store)
    submit(store, "t-1")
    submit(store, "t-2", deadline_ms=NOW + 50_000)
    old_jobs = {
        "t-1": {"phase": "active", "seq": 1, "agent_name": "echo", "attempt": 1},
        "t-2": {"phase": "queued", "seq": 2, "agent_name": "echo", "deadline_ms": NOW + 50_000},
    }
    store.documents[scheduler_key("acme")] = json.dumps(
        {"state": {"jobs": old_jobs, "seq": 2, "starts": []}, "recent": [], "due_ms": None}
    )
    for key in [k for k in store.documents if k.split(":", 1)[0] in ("queue", "slots", "wheel")]:
        del store.documents[key]
    assert scheduled_keys(succeeded(store, "t-1")) == ["acme/t-2.1"]
    assert counters(store) == {"queued": 0, "active": 1, "retrying": 0}
    assert records(tick(store, NOW + 50_000)) == ["TaskTimedOut"]


# --- the timer wheel on its own ---------------------------------------------------------------


class Entries(dict[str, dict[str, Any]]):
    def put(self, key: str, value: dict[str, Any]) -> None:
        self[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.pop(key, None)


def test_a_timer_is_never_early_and_at_most_a_second_late() -> None:
    entries, meta = Entries(), new_wheel()
    wheel = TimerWheel(entries, "w", meta)
    wheel.add(NOW + 1_500, ["deadline", "t-1", 0, 0])
    assert wheel.fire(NOW + 1_499, 10) == ([], False)
    fired, more = wheel.fire(NOW + 2_000, 10)
    assert fired == [["deadline", "t-1", 0, 0]] and not more
    assert entries == {} and meta["next_s"] is None and meta["pending"] == 0


def test_many_timers_of_one_second_are_pages_fired_a_few_at_a_time() -> None:
    entries, meta = Entries(), new_wheel()
    wheel = TimerWheel(entries, "w", meta)
    for n in range(PAGE * 3 + 1):
        wheel.add(NOW, ["deadline", f"t-{n}", 0, 0])
    assert max(len(json.dumps(v)) for v in entries.values()) < 64 * 1024
    fired, more = wheel.fire(NOW, 2)
    assert len(fired) == PAGE * 2 and more
    fired, more = wheel.fire(NOW, 2)
    assert len(fired) == PAGE + 1 and not more
    assert entries == {}


def test_the_next_second_is_found_across_minutes_and_beyond_the_horizon() -> None:
    entries, meta = Entries(), new_wheel()
    wheel = TimerWheel(entries, "w", meta)
    wheel.add(NOW, ["a", "t-1", 0, 0])
    wheel.add(NOW + 3_600_000, ["b", "t-2", 0, 0])  # an hour later
    far = NOW + 3 * 86_400_000  # three days later: beyond the look-ahead
    wheel.add(far, ["c", "t-3", 0, 0])
    assert [t[0] for t in wheel.fire(NOW, 5)[0]] == ["a"]
    assert wheel.next_ms() == -(-(NOW + 3_600_000) // 1000) * 1000
    assert [t[0] for t in wheel.fire(NOW + 3_600_000, 5)[0]] == ["b"]
    waypoint = wheel.next_ms()
    assert waypoint is not None and NOW + 3_600_000 < waypoint < far
    while (when := wheel.next_ms()) is not None and when < far:
        assert wheel.fire(when, 5)[0] == []
    assert [t[0] for t in wheel.fire(far, 5)[0]] == ["c"]
    assert entries == {}


def test_a_timer_added_behind_the_cursor_fires_at_the_next_look() -> None:
    entries, meta = Entries(), new_wheel()
    wheel = TimerWheel(entries, "w", meta)
    wheel.add(NOW + 10_000, ["a", "t-1", 0, 0])
    wheel.fire(NOW + 10_000, 5)
    wheel.add(NOW, ["late", "t-2", 0, 0])
    fired, _ = wheel.fire(NOW + 10_001, 5)
    assert fired == [] or fired[0][0] == "late"
    assert [t[0] for t in fired + wheel.fire(NOW + 11_000, 5)[0]] == ["late"]


# --- property: a simulated tenant keeps every limit -------------------------------------------

STEP = st.one_of(
    st.tuples(st.just("submit"), st.integers(0, 2), st.one_of(st.none(), st.integers(1, 90_000))),
    st.tuples(st.just("start"), st.integers(0, 10**6), st.none()),
    st.tuples(st.just("succeed"), st.integers(0, 10**6), st.none()),
    st.tuples(st.just("fail"), st.integers(0, 10**6), st.none()),
    st.tuples(st.just("stale"), st.integers(0, 10**6), st.none()),
    st.tuples(st.just("cancel"), st.integers(0, 10**6), st.none()),
    st.tuples(st.just("wait"), st.sampled_from([1, 999, 20_000, 61_000]), st.none()),
    st.tuples(st.just("suspend"), st.booleans(), st.none()),
)  # fmt: skip
QUOTAS = st.tuples(  # max_concurrency, max_retries, retry_backoff_ms, timeout_ms
    st.integers(1, 3),
    st.integers(0, 2),
    st.sampled_from([0, 500, 20_000]),
    st.sampled_from([1000, 30_000]),
)


def tasks_of(store: Store) -> dict[str, dict[str, Any]]:
    found = {}
    for key, raw in store.documents.items():
        if key.startswith("task:"):
            found[key.split("/", 1)[1]] = json.loads(raw)["state"]
    return found


def check_invariants(
    store: Store, limits: tuple[int, int], quotas: dict[str, tuple[int, int, int, int]]
) -> None:
    tasks = tasks_of(store)
    holding = [t for t in tasks.values() if t["status"] in ("scheduled", "running")]
    assert len(holding) <= limits[0]
    for agent, (max_concurrency, max_retries, _, _) in quotas.items():
        assert sum(1 for t in holding if t["agent_name"] == agent) <= max_concurrency
        attempts = [t["attempt"] for t in tasks.values() if t["agent_name"] == agent]
        assert all(attempt <= max_retries + 1 for attempt in attempts)
    by_status = {
        "queued": sum(1 for t in tasks.values() if t["status"] == "authorized"),
        "active": len(holding),
        "retrying": sum(1 for t in tasks.values() if t["status"] == "retrying"),
    }
    assert counters(store) == by_status
    assert store.largest < 64 * 1024


@settings(max_examples=150, deadline=None)
@given(
    st.lists(QUOTAS, min_size=2, max_size=3),
    st.integers(1, 3),
    st.integers(1, 4),
    st.lists(STEP, max_size=30),
)
def test_a_simulated_tenant_keeps_every_limit(
    agent_quotas: list[tuple[int, int, int, int]],
    max_concurrent_tasks: int,
    tasks_per_minute: int,
    steps: list[tuple[Any, Any, Any]],
) -> None:
    store = limited(max_concurrent_tasks=max_concurrent_tasks, tasks_per_minute=tasks_per_minute)
    quotas = {
        f"agent-{i}": (min(mc, max_concurrent_tasks), *rest)
        for i, (mc, *rest) in enumerate(agent_quotas)
    }
    for agent, (mc, mr, backoff, timeout) in quotas.items():
        deploy(store, agent, max_concurrency=mc, max_retries=mr, retry_backoff_ms=backoff,
               timeout_ms=timeout)  # fmt: skip
    firsts: list[int] = []
    for i, (kind, a, b) in enumerate(steps):
        tasks = tasks_of(store)
        live = sorted(t for t, s in tasks.items() if s["status"] in ("scheduled", "running"))
        if kind == "submit":
            deadline = None if b is None else store.now + b
            agent = sorted(quotas)[a % len(quotas)]
            plan = submit(store, f"t-{i}", agent=agent, deadline_ms=deadline)
        elif kind in ("start", "succeed", "fail", "stale") and live:
            task_id = live[a % len(live)]
            attempt = int(tasks[task_id]["attempt"])
            if kind == "start":
                plan = report(store, "RunStarted", task_id, attempt, worker="w")
            elif kind == "succeed":
                plan = succeeded(store, task_id, attempt)
            elif kind == "fail":
                plan = failed(store, task_id, attempt)
            else:
                plan = succeeded(store, task_id, attempt - 1)
                assert records(plan) == ["RunSucceeded"]
        elif kind == "cancel" and tasks:
            task_id = sorted(tasks)[a % len(tasks)]
            plan = store.run("aion.task.CancelTask", f"acme/{task_id}", {"reason": "x"})
        elif kind == "wait":
            plan = tick(store, store.now + a)
        elif kind == "suspend":
            if (task_status_of(store) == "active") == bool(a):
                suspend(store, bool(a))
            continue
        else:
            continue
        firsts += [
            store.now
            for e in plan.emissions
            if e.record == "aion.task.TaskScheduled" and e.value["attempt"] == 1
        ]
        check_invariants(store, (max_concurrent_tasks, tasks_per_minute), quotas)
        for n, start in enumerate(firsts):
            assert len([t for t in firsts[n:] if t < start + 60_000]) <= tasks_per_minute
        # Nothing happens before the due time, so a timer waking then misses nothing.
        when = due(store)
        quiet = store.now + 10**9 if when is None else when - 1
        if quiet > store.now:
            probe = Store()
            probe.documents, probe.count, probe.now = dict(store.documents), store.count, store.now
            assert records(tick(probe, quiet)) == [], (i, when)


def task_status_of(store: Store) -> str:
    document = store.read("tenant:acme")
    assert document is not None
    return str(document["state"]["status"])
