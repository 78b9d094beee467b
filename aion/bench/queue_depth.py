"""Scenario 9, queue depth: the SubmitTask rate into an empty queue against the rate into a
queue already holding many tasks of the same tenant (issue 16: the ratio must be >= 0.8).

Both tenants admit one task a minute (``tasks_per_minute`` 1, ``max_concurrent_tasks`` 1):
every task after the first stays queued, with no kernel work and no running task to keep
alive. The deep tenant is filled first (batches of 1,000, until the read model shows them all
past "submitted" or the fill's time runs out); then bursts of the same size go, in turns, to
a fresh empty tenant and to the deep one, each timed from its first submit until the read
model shows every task of the burst decided. Afterwards the tenants are suspended, so that
their queues never run (decision 47).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from aion.bench.harness import Figure
from aion.bench.ingest import bench_tenant
from aion.bench.system import System
from aion.bench.task_load import BATCH_MAX, Trial, closed_batch, deploy_echo, suspend

SCENARIO = "9 queue depth"
QUEUEING = {"max_concurrent_tasks": 1, "tasks_per_minute": 1}


@dataclass(frozen=True)
class DepthPlan:
    depth: int
    burst: int
    trials: int
    fill_s: float  # the longest the fill may take

    @classmethod
    def of(cls, quick: bool, depth: int | None) -> DepthPlan:
        depth = depth or (1000 if quick else 50_000)
        burst = max(50, min(BATCH_MAX, depth // 10))
        return cls(depth, burst, 2 if quick else 5, 60 if quick else 900)


def _queueing_tenant(system: System) -> str:
    tenant = bench_tenant(system, QUEUEING)
    deploy_echo(system, tenant, max_concurrency=1)
    return tenant


def _burst(system: System, tenant: str, size: int, wait_s: float) -> Trial:
    ids = [f"q{uuid.uuid4().hex[:8]}-{i}" for i in range(size)]
    return closed_batch(system, tenant, ids, statuses=None, wait_s=wait_s)


def _fill(system: System, tenant: str, depth: int, seconds: float) -> tuple[int, float]:
    """Queues up to ``depth`` tasks in ``tenant`` within ``seconds``: (how many the read
    model shows, the rate they were decided at)."""
    deadline = time.monotonic() + seconds
    shown, began = 0, time.monotonic()
    while shown < depth and time.monotonic() < deadline:
        size = min(BATCH_MAX, depth - shown)
        trial = _burst(system, tenant, size, deadline - time.monotonic())
        shown += len(trial.seen)
        if len(trial.seen) < size:
            break
    return shown, shown / (time.monotonic() - began)


def queue_depth(system: System, quick: bool, depth: int | None = None) -> list[Figure]:
    plan = DepthPlan.of(quick, depth)
    deep = _queueing_tenant(system)
    made = [deep]
    try:
        queued, fill_rate = _fill(system, deep, plan.depth, plan.fill_s)
        empty_rates, deep_rates = [], []
        for _ in range(plan.trials):
            empty = _queueing_tenant(system)
            made.append(empty)
            empty_rates.append(_burst(system, empty, plan.burst, 300).seen_rate())
            trial = _burst(system, deep, plan.burst, 300)
            deep_rates.append(trial.seen_rate())
            queued += len(trial.seen)
    finally:
        for tenant in made:
            suspend(system, tenant, "benchmark queue: never to run")
    note = f"bursts of {plan.burst:,}; queue filled to {queued:,} at {fill_rate:,.0f}/s" + (
        "" if queued >= plan.depth else f" (of {plan.depth:,} asked: the fill ran out of time)"
    )
    return [
        Figure(
            SCENARIO,
            f"SubmitTask/s with {plan.depth:,} queued",
            "/s",
            deep_rates,
            empty_rates,
            "empty queue",
            target=">= 0.8x the empty queue's rate",
            check=lambda f: (f.ratio or 0) >= 0.8,
            note=note,
        )
    ]
