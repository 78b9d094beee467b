"""The worker's changelogs are lost, and the write model is rebuilt from the events topics
(issue 17, finding 8): `aion replay write-model --replace`, with the workers stopped.

The tenant has work in every state when the changelogs go: an agent, a policy, a task
dispatched to a kernel that is down, and two tasks queued behind it. After the rebuild, every
aggregate's state is what the lost changelog held, and the tenant goes on: the dispatched task
runs, the queued ones are admitted in turn, and new commands continue each aggregate's versions.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from aion.settings import Settings
from streams.rebuild_changelog import stored_documents
from tests.conftest import ROOT, AionProcesses
from tests.stack.test_kernel_runs import agent, example
from tests.stack.test_orchestration import new_tenant, submit

WAIT = {"Prefer": "wait=20"}


def aion(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aion", *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


def tenant_documents(settings: Settings, tenant: str) -> dict[str, object]:
    """The aggregates' states of the tenant, as the changelogs hold them (the tenant stage's
    and the task stage's), and admission's job of each live task (decision 56)."""
    stored = {**stored_documents(settings, "aggregates"), **stored_documents(settings, "tasks")}
    return {
        key: document.get("state")
        for key, document in stored.items()
        if key.split(":", 1)[0] in ("tenant", "agent", "task", "policy", "job")
        and key.split(":", 1)[1].split("/", 1)[0] == tenant
    }


def task_status(api: httpx.Client, tenant: str, task_id: str) -> str:
    return str(api.get(f"/v1/tenants/{tenant}/tasks/{task_id}").json().get("status"))


def wait_for_status(api: httpx.Client, tenant: str, task_id: str, status: str) -> None:
    deadline = time.monotonic() + 60
    while (found := task_status(api, tenant, task_id)) != status:
        assert time.monotonic() < deadline, f"{task_id} is {found}, not {status}"
        time.sleep(0.3)


@pytest.fixture()
def no_kernel(processes: AionProcesses) -> Iterator[None]:
    processes.stop_role("kernel")
    try:
        yield
    finally:
        if "kernel" not in processes.procs:
            processes.start_role("kernel")
        if "worker" not in processes.procs:
            processes.start_role("worker")
        processes.wait_ready()


@pytest.mark.timeout(900)
def test_lost_changelogs_are_rebuilt_from_the_events_and_the_tenant_goes_on(
    no_kernel: None, processes: AionProcesses, api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant(api, max_concurrent_tasks=1)
    deployed = agent(api, tenant, "wecho", example("wasi_echo"), "wasi_command")
    assert deployed.status_code == 201, deployed.text
    cedar = "permit(principal, action, resource);"
    put = api.put(f"/v1/tenants/{tenant}/policies/allow-mine", json={"cedar": cedar}, headers=WAIT)
    assert put.status_code in (200, 201), put.text
    for task_id in ("first", "second", "third"):
        assert submit(api, tenant, task_id, agent_name="wecho").status_code == 201
    wait_for_status(api, tenant, "first", "scheduled")  # dispatched; the kernel is down
    assert task_status(api, tenant, "second") == "authorized"  # queued behind it
    processes.stop_role("worker")
    before = tenant_documents(settings, tenant)
    assert len(before) >= 9  # tenant, agent, policy, three tasks and their jobs

    kept = aion("replay", "write-model")
    said = kept.stdout + kept.stderr
    assert kept.returncode == 1 and "--replace" in said, said
    rebuilt = aion("replay", "write-model", "--replace")
    said = rebuilt.stdout + rebuilt.stderr
    assert rebuilt.returncode == 0 and "written" in said, said
    assert tenant_documents(settings, tenant) == before

    processes.start_role("worker")
    processes.start_role("kernel")
    processes.wait_ready()
    for task_id in ("first", "second", "third"):
        wait_for_status(api, tenant, task_id, "succeeded")
    # Versions continue where the events left them: the policy's next version is its second.
    again = api.put(
        f"/v1/tenants/{tenant}/policies/allow-mine", json={"cedar": cedar}, headers=WAIT
    )
    assert again.status_code == 200, again.text
    assert again.json()["aggregate_version"] == 2
