"""A projector killed in the middle of its batches loses nothing and applies nothing twice:
its rows and its Kafka position are committed in one Postgres transaction."""

from __future__ import annotations

import time

import httpx
import psycopg

from aion.settings import Settings
from tests.conftest import AionProcesses
from tests.stack.test_projection_lag import lag
from tests.stack.test_tenants_api import new_tenant_id


def test_a_projector_killed_mid_batch_loses_and_duplicates_nothing(
    processes: AionProcesses, api: httpx.Client, settings: Settings
) -> None:
    prefix = new_tenant_id()
    tenants = [f"{prefix}-{i:03d}" for i in range(150)]
    processes.stop_role("projector")
    for tenant in tenants:  # decided by the worker while no projector runs
        accepted = api.post("/v1/tenants", json={"tenant_id": tenant, "display_name": "K"})
        assert accepted.status_code == 202, accepted.text
    deadline = time.monotonic() + 60
    while lag(api) < len(tenants) and time.monotonic() < deadline:
        time.sleep(0.2)
    # Start it, then kill it without warning while it works through the backlog.
    projector = processes.start_role("projector", AION_PROJECTOR_BATCH="10")
    with psycopg.connect(settings.database) as conn:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            (done,) = conn.execute(  # type: ignore[misc]
                "select count(*) from tenants where tenant_id like %s", (f"{prefix}-%",)
            ).fetchone()
            if done > 0:
                break
            time.sleep(0.05)
    projector.kill()
    projector.wait()
    assert done < len(tenants), "the projector finished before it could be killed"
    processes.procs.pop("projector")
    processes.start_role("projector")
    deadline = time.monotonic() + 120
    while lag(api) > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    with psycopg.connect(settings.database) as conn:
        rows = conn.execute(
            "select tenant_id, version from tenants where tenant_id like %s order by tenant_id",
            (f"{prefix}-%",),
        ).fetchall()
        outcomes = conn.execute(
            "select count(*), count(distinct command_id), max(array_length(event_ids, 1))"
            " from command_outcomes where tenant_id like %s",
            (f"{prefix}-%",),
        ).fetchone()
    assert [r[0] for r in rows] == tenants  # every one, once
    assert {r[1] for r in rows} == {1}
    assert outcomes == (len(tenants), len(tenants), 1)  # one outcome each, one event each
