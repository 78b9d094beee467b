"""Projection lag is measured from Kafka and the committed positions, and shown in /readyz."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx

from tests.conftest import ROOT, AionProcesses
from tests.stack.test_tenants_api import new_tenant_id


def lag(api: httpx.Client) -> int:
    value = api.get("/readyz").json()["projection_lag"]["core"]
    assert isinstance(value, int)
    return value


def wait_for(api: httpx.Client, predicate: object, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        value = lag(api)
        if predicate(value) or time.monotonic() > deadline:  # type: ignore[operator]
            return value
        time.sleep(0.5)


def test_lag_grows_while_the_projector_is_stopped_and_drains_after(
    processes: AionProcesses, api: httpx.Client
) -> None:
    processes.stop_role("projector")
    try:
        for _ in range(3):
            body = {"tenant_id": new_tenant_id(), "display_name": "Lag"}
            assert api.post("/v1/tenants", json=body).status_code == 202
        assert wait_for(api, lambda n: n >= 3) >= 3  # the worker decided; nobody projected
    finally:
        processes.start_role("projector")
    assert wait_for(api, lambda n: n == 0) == 0


def test_stack_status_shows_each_projections_lag(api: httpx.Client) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "aion", "stack", "status"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "Projections" in shown.stdout
    assert re.search(r"│ core\s+│\s+\d+ │", shown.stdout), shown.stdout
