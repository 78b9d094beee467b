"""A dispatch that kills every kernel worker that takes it is run at most
``MAX_STARTS`` times, then failed as ``worker_lost`` (issue 17, finding 13).

The failpoint ``kernel-run@<agent>`` makes the kernel worker exit (like a kill -9) as it
starts a run of that agent. Before the cap, each next owner of the partition took the
uncommitted dispatch again and died again, for ever. The test plays the supervisor: it
restarts the kernel worker each time it dies, and counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from aion.settings import Settings
from streams.kernel_crashes import MAX_STARTS
from tests.conftest import AionProcesses
from tests.stack.kafka_reading import names
from tests.stack.test_kernel_runs import agent, example, run_task
from tests.stack.test_orchestration import WAIT, new_tenant, task_events


@pytest.fixture()
def crashing_kernel(processes: AionProcesses) -> Iterator[str]:
    """A kernel worker that dies on the runs of the agent this yields."""
    name = f"crasher-{int(time.time())}"
    processes.stop_role("kernel")
    try:
        yield name
    finally:
        if "kernel" in processes.procs:
            processes.stop_role("kernel")
        processes.start_role("kernel")


def test_a_run_that_kills_its_workers_is_failed_after_the_cap(
    processes: AionProcesses, api: httpx.Client, settings: Settings, crashing_kernel: str
) -> None:
    tenant = new_tenant(api)
    quotas = {"fuel": 50_000_000, "memory_mb": 16, "timeout_ms": 3000, "max_retries": 0}
    assert agent(api, tenant, crashing_kernel, example("echo"), quotas=quotas).status_code == 201
    assert agent(api, tenant, "echo", example("echo")).status_code == 201
    failpoint = {"AION_FAILPOINTS": f"kernel-run@{crashing_kernel}"}
    kernel = processes.start_role("kernel", **failpoint)
    task_id = f"crash-{int(time.time() * 1000)}"
    body = {"task_id": task_id, "agent_name": crashing_kernel, "input": "{}"}
    assert api.post(f"/v1/tenants/{tenant}/tasks", json=body, headers=WAIT).status_code == 201

    crashes = 0
    deadline = time.monotonic() + 300
    while kernel.poll() is None or kernel.returncode == 86:
        if kernel.poll() == 86:  # died on the run, as the failpoint says: a next owner
            crashes += 1
            assert crashes <= MAX_STARTS, "the run was taken again past its cap"
            kernel = processes.start_role("kernel", **failpoint)
        if crashes == MAX_STARTS:
            break
        assert time.monotonic() < deadline, f"{crashes} crashes in 300 s"
        time.sleep(0.2)
    assert crashes == MAX_STARTS

    events = task_events(settings, tenant, task_id, "TaskFailed", timeout=120)
    failed = [v for n, v in events if n.endswith(".RunFailed")][-1]
    assert failed["reason"] == "worker_lost", failed
    assert f"died during this run {MAX_STARTS} times" in failed["message"]
    assert names(events).count("RunFailed") == 1
    assert kernel.poll() is None, "the worker refused the run rather than dying on it"
    # ...and still runs other agents' runs.
    run_task(api, settings, tenant, "echo", {"after": "crashes"}, "TaskSucceeded")
