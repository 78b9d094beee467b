"""A tenant's backlog on the real pipeline (issue 16): bursts that used to crash the worker.

Two batches of 1,000 tasks once grew the tenant's scheduler document past Kafka's 1 MB limit;
the command processor died on it and every restart died the same way. Here the same bursts go
through the API, the worker, the kernel and the projector, and every task must succeed, with
the tenant's partition still deciding commands afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from aion.settings import Settings
from tests.stack.test_kernel_runs import agent, example
from tests.stack.test_orchestration import WAIT, new_tenant

BATCH = 1000


@pytest.fixture
def db(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(settings.database, autocommit=True) as conn:
        yield conn


def post_batches(api: httpx.Client, tenant: str, prefix: str, batches: int) -> None:
    for b in range(batches):
        items = [
            {"task_id": f"{prefix}-{b:03d}-{n:04d}", "agent_name": "wecho", "input": '{"n": 1}'}
            for n in range(BATCH)
        ]
        posted = api.post(f"/v1/tenants/{tenant}/tasks/batch", json={"tasks": items}, timeout=60)
        assert posted.status_code == 202, posted.text
        assert posted.json()["accepted"] == BATCH


def statuses(db: psycopg.Connection[Any], tenant: str) -> dict[str, int]:
    found = db.execute(
        "select status, count(*) from tasks where tenant_id = %s group by status", (tenant,)
    ).fetchall()
    return {str(status): int(count) for status, count in found}


def wait_for(
    db: psycopg.Connection[Any], tenant: str, status: str, count: int, timeout: float
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        seen = statuses(db, tenant)
        if seen.get(status, 0) >= count or time.monotonic() > deadline:
            return seen
        time.sleep(1)


def test_two_bursts_of_a_thousand_tasks_all_succeed_and_the_partition_goes_on(
    api: httpx.Client, db: psycopg.Connection[Any]
) -> None:
    tenant = new_tenant(api, max_concurrent_tasks=1000, tasks_per_minute=1_000_000)
    deployed = agent(
        api, tenant, "wecho", example("wasi_echo"), "wasi_command", quotas={"max_concurrency": 1000}
    )
    assert deployed.status_code == 201, deployed.text
    started = time.monotonic()
    post_batches(api, tenant, "burst", 2)
    seen = wait_for(db, tenant, "succeeded", 2 * BATCH, timeout=600)
    took = time.monotonic() - started
    print(f"2,000 tasks succeeded in {took:.1f} s ({2 * BATCH / took:.0f} tasks/s)")
    assert seen == {"succeeded": 2 * BATCH}, seen
    # The tenant's partition still decides: a further command has its outcome at once.
    body = {"task_id": "after", "agent_name": "wecho", "input": "{}"}
    after = api.post(f"/v1/tenants/{tenant}/tasks", json=body, headers=WAIT)
    assert after.status_code == 201, after.text
