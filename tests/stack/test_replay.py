"""`aion replay`: a shadow rebuild from Kafka, verified against the live tables, swapped in
while the live projection keeps running."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from aion.settings import Settings
from tests.conftest import ROOT
from tests.stack.test_orchestration import WAIT
from tests.stack.test_projection_lag import lag
from tests.stack.test_tenants_api import new_tenant_id


def aion(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aion", *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


def settle(api: httpx.Client) -> None:
    deadline = time.monotonic() + 60
    while lag(api) > 0 and time.monotonic() < deadline:
        time.sleep(0.3)


# Three whole replays: their time grows with the stack's history (a few seconds on a fresh
# stack; a local stack that has run `aion bench` holds ~700k events, ~80 s a replay).
@pytest.mark.timeout(1200)
def test_a_shadow_replay_verifies_refuses_to_hide_differences_and_repairs_when_asked(
    api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant_id()
    body = {"tenant_id": tenant, "display_name": "Original"}
    assert api.post("/v1/tenants", json=body, headers=WAIT).status_code == 201
    settle(api)

    verified = aion("replay", "core", "--verify-only")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verified; nothing swapped" in verified.stdout
    assert " no " not in verified.stdout

    with psycopg.connect(settings.database) as conn:  # a read model gone wrong
        conn.execute("update tenants set display_name = 'Tampered' where tenant_id = %s", (tenant,))
    refused = aion("replay", "core")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "nothing swapped" in refused.stdout
    assert api.get(f"/v1/tenants/{tenant}").json()["display_name"] == "Tampered"

    repaired = aion("replay", "core", "--accept-differences")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "swapped in" in repaired.stdout
    assert api.get(f"/v1/tenants/{tenant}").json()["display_name"] == "Original"
    # The live projector goes on, into the swapped-in tables.
    later = {"tenant_id": new_tenant_id(), "display_name": "After the swap"}
    assert api.post("/v1/tenants", json=later, headers=WAIT).status_code == 201
    assert api.get(f"/v1/tenants/{later['tenant_id']}").json()["display_name"] == "After the swap"
    with psycopg.connect(settings.database) as conn:
        schemas = [r[0] for r in conn.execute(
            "select nspname from pg_namespace where nspname like 'replay_core_%'"
        )]  # fmt: skip
    assert schemas == []  # shadows are dropped


def test_replay_refuses_an_unknown_projection_and_a_bad_start() -> None:
    unknown = aion("replay", "nope")
    assert unknown.returncode == 2 and "no projection" in unknown.stderr
    bad = aion("replay", "core", "--from", "yesterday-ish")
    assert bad.returncode == 2 and "ISO" in bad.stderr
