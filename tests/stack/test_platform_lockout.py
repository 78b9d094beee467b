"""Issue 17, finding 9, against the running API: a tenant admin's forbid-everything policy does
not lock the platform out, and a tenant policy may not take a baseline rule's name."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.stack.identity import admin_client, bearer
from tests.stack.test_tenants_api import assert_problem, new_tenant_id

WAIT = {"Prefer": "wait=20"}
LOCK_OUT = "forbid(principal, action, resource);"


def settled(client: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    """A command's outcome: the waited answer, or (past the wait) its status polled until
    decided. A 403 (refused at the gate) is returned as it is."""
    if response.status_code != 202:
        return {"http": response.status_code, **response.json()}
    url = response.json()["status_url"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if body["status"] != "pending":
            return {"http": 200 if body["status"] == "accepted" else 422, **body}
        time.sleep(0.3)
    raise AssertionError(f"{url} still pending after 60 s")


def test_a_tenant_forbid_on_everything_does_not_stop_the_platform(system: str) -> None:
    tenant = new_tenant_id()
    t = f"/v1/tenants/{tenant}"
    with admin_client(system) as platform:
        body = {"tenant_id": tenant, "display_name": "L"}
        created = settled(platform, platform.post("/v1/tenants", json=body, headers=WAIT))
        assert created["status"] == "accepted", created
        tenant_admin = bearer("ann", tenant, "admin")
        put = httpx.put(
            f"{system}{t}/policies/lock-out",
            json={"cedar": LOCK_OUT},
            headers={**tenant_admin, **WAIT},
            timeout=30,
        )
        assert settled(platform, put)["status"] == "accepted", put.text
        # The forbid binds the tenant's own admin (the API caches policies for 2 s)...
        deadline = time.monotonic() + 15
        while True:
            own = httpx.get(f"{system}{t}/policies", headers=tenant_admin, timeout=30)
            if own.status_code == 403 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert assert_problem(own, 403, None)["policies"] == ["tenant:lock-out"]
        # ...but not the platform: it suspends, reinstates, and deletes the policy.
        for send in (
            lambda: platform.post(f"{t}/suspend", json={"reason": "abuse"}, headers=WAIT),
            lambda: platform.post(f"{t}/reinstate", headers=WAIT),
            lambda: platform.delete(f"{t}/policies/lock-out", headers=WAIT),
        ):
            outcome = settled(platform, send())
            assert outcome["http"] == 200 and outcome["status"] == "accepted", outcome
        # With the policy gone, the tenant's admin is back in (after the policy cache's 2 s).
        deadline = time.monotonic() + 15
        while True:
            own = httpx.get(f"{system}{t}/policies", headers=tenant_admin, timeout=30)
            if own.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert own.status_code == 200, own.text


def test_a_tenant_policy_may_not_take_a_baseline_name(system: str) -> None:
    tenant = new_tenant_id()
    t = f"/v1/tenants/{tenant}"
    with admin_client(system) as platform:
        body = {"tenant_id": tenant, "display_name": "B"}
        created = settled(platform, platform.post("/v1/tenants", json=body, headers=WAIT))
        assert created["status"] == "accepted", created
        with httpx.Client(base_url=system, headers=bearer("ann", tenant, "admin")) as ann:
            for name in ("baseline-suspended-tenant", "baseline-tenant-isolation", "platform-x"):
                cedar = {"cedar": "forbid(principal, action, resource) when { false };"}
                put = ann.put(f"{t}/policies/{name}", json=cedar, headers=WAIT)
                refused = settled(platform, put)
                assert (refused["http"], refused["field"]) == (422, "/policy_id"), refused
                assert "reserved" in str(refused.get("detail") or refused.get("reason"))
            listed = ann.get(f"{t}/policies")
            assert listed.status_code == 200 and listed.json()["items"] == [], listed.text
