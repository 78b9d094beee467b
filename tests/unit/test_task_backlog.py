"""100,000 tasks queued in one tenant, through the command processor's own planner (issue 16).

The scheduler used to keep every live task, each with its agent's manifest, in one document per
tenant: past ~2,000 queued tasks it outgrew Kafka's 1 MB message limit and the worker crashed on
it for good. Here every document the planner writes and every message it produces is measured:
none may reach 64 KiB, whatever the backlog, and the queue must drain in submission order.
"""

from __future__ import annotations

from commands.scheduler import MAX_ADMISSIONS
from streams.tenant_stage import scheduler_key
from tests.unit.planning import Store, deploy, submit, succeeded, task_status, tenant

TASKS = 100_000
LIMIT = 64 * 1024


def name(n: int) -> str:
    return f"t-{n:06d}"


def test_a_hundred_thousand_queued_tasks_drain_in_order_with_every_entry_small() -> None:
    store = Store()
    tenant(store, max_concurrent_tasks=1, tasks_per_minute=10_000_000)
    deploy(store, max_concurrency=1)
    for n in range(TASKS):
        submit(store, name(n))
    assert task_status(store, name(0)) == "scheduled"
    assert task_status(store, name(TASKS - 1)) == "authorized"
    state = store.read(scheduler_key("acme"))["state"]  # type: ignore[index]
    assert (state["queued"], state["active"]) == (TASKS - 1, 1)
    assert store.largest < LIMIT, store.largest
    dispatched = []
    for n in range(TASKS):
        plan = succeeded(store, name(n))
        dispatched += [e.key for e in plan.emissions if e.record == "aion.kernel.DispatchRun"]
        assert len(plan.emissions) <= 2 + 2 * MAX_ADMISSIONS  # no plan grows with the backlog
    assert dispatched == [f"acme/{name(n)}.1" for n in range(1, TASKS)]
    assert all(task_status(store, name(n)) == "succeeded" for n in range(0, TASKS, 997))
    assert task_status(store, name(TASKS - 1)) == "succeeded"
    assert store.largest < LIMIT, store.largest
    # Every queue entry was deleted once taken: nothing is left behind for the tasks that ended.
    # Nor is any job admission kept for a live task (decision 56).
    kinds = ("queue", "parked", "wheel", "job")
    left = [key for key in store.documents if key.split(":", 1)[0] in kinds]
    assert left == []
    state = store.read(scheduler_key("acme"))["state"]  # type: ignore[index]
    assert (state["queued"], state["active"], state["retrying"]) == (0, 0, 0)
