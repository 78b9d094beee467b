"""A worker killed at the worst moment loses nothing and changes nothing twice."""

from __future__ import annotations

import time

import httpx

from aion.settings import Settings
from tests.conftest import AionProcesses
from tests.stack.test_tenants_api import events_for, new_tenant_id


def test_worker_killed_after_producing_before_saving_and_committing(
    processes: AionProcesses, api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant_id()
    processes.stop_role("worker")
    crashing = processes.start_role(
        "worker",
        AION_FAILPOINTS="after-produce@aion.tenant.CreateTenant",
        AION_WORKER_ID="crash-test",
    )
    try:
        accepted = api.post("/v1/tenants", json={"tenant_id": tenant, "display_name": "Crash"})
        assert accepted.status_code == 202, accepted.text
        assert crashing.wait(timeout=120) == 86, "the worker did not hit the failpoint"
        # The events were acknowledged by Kafka before the crash...
        first = events_for(settings, tenant)
        assert [name for name, _ in first] == ["aion.tenant.TenantCreated"]
    finally:
        processes.start_role("worker")  # the normal worker, on its own RocksDB folder
    processes.wait_ready()
    # ...and the redelivered command is decided again, on the state from before the crash.
    deadline = time.monotonic() + 60
    while True:
        status = api.get(accepted.json()["status_url"]).json()["status"]
        if status != "pending" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == "accepted"
    events = events_for(settings, tenant)
    assert {name for name, _ in events} == {"aion.tenant.TenantCreated"}  # no "already exists"
    assert len({e["envelope"]["event_id"] for _, e in events}) == 1  # duplicates share the id
    tenant_row = api.get(f"/v1/tenants/{tenant}").json()
    assert tenant_row["version"] == 1
    # The aggregate moved on exactly once: a second create is refused as a duplicate.
    again = api.post("/v1/tenants?wait=20", json={"tenant_id": tenant, "display_name": "Again"})
    assert again.status_code == 409
