"""The endpoints the console needed, straight over HTTP, with their refusals: the tenant list
(platform admins), the policy what-if, and /health."""

from __future__ import annotations

import httpx

from tests.stack.identity import bearer
from tests.stack.test_domain_api import WAIT
from tests.stack.test_tenants_api import assert_problem, new_tenant_id

SIMULATE = "/v1/tenants/{tenant}/policies/{policy}/simulate"
ALLOW_ALL = "permit(principal, action, resource);"


def new_tenant(api: httpx.Client, prefix: str = "t") -> str:
    tenant = prefix + new_tenant_id()[1:]
    created = api.post("/v1/tenants", json={"tenant_id": tenant, "display_name": "A"},
                       headers=WAIT)  # fmt: skip
    assert created.status_code == 201, created.text
    return tenant


def test_the_tenant_list_pages_by_id_and_filters_by_prefix(api: httpx.Client) -> None:
    stem = new_tenant_id()
    made = sorted(new_tenant(api, f"{stem}-{n}") for n in range(3))
    first = api.get("/v1/tenants", params={"prefix": stem, "limit": 2}).json()
    assert [t["tenant_id"] for t in first["items"]] == made[:2] and first["next_cursor"]
    rest = api.get("/v1/tenants", params={"prefix": stem, "cursor": first["next_cursor"]})
    assert [t["tenant_id"] for t in rest.json()["items"]] == made[2:]
    # A LIKE wildcard in the prefix is taken literally: it matches no id.
    assert api.get("/v1/tenants", params={"prefix": stem[:3] + "%"}).json()["items"] == []
    assert api.get("/v1/tenants", params={"status": "suspended", "prefix": stem}).json() == {
        "items": [],
        "next_cursor": None,
    }


def test_the_tenant_list_refuses_bad_parameters_and_tenant_admins(
    api: httpx.Client, system: str
) -> None:
    assert_problem(api.get("/v1/tenants", params={"limit": 0}), 422, "limit")
    assert_problem(api.get("/v1/tenants", params={"cursor": "not-a-cursor"}), 400, "cursor")
    tenant = new_tenant(api)
    admin = bearer("ana", tenant, "admin")
    assert_problem(httpx.get(f"{system}/v1/tenants", headers=admin, timeout=10), 403, None)


def test_the_what_if_answers_and_refuses_bad_input(api: httpx.Client, system: str) -> None:
    tenant = new_tenant(api)
    url = SIMULATE.format(tenant=tenant, policy="open")
    answered = api.post(url, json={"cedar": ALLOW_ALL, "since": "1h"})
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["policy_id"] == "open" and body["window"]["since"] == "1h"

    assert_problem(api.post(url, json={"cedar": ALLOW_ALL, "extra": 1}), 422, "/extra")
    assert_problem(api.post(url, json={"cedar": "  "}), 422, "/cedar")
    assert_problem(api.post(url, json={"cedar": "permit(principal"}), 422, "/cedar")
    assert_problem(api.post(url, json={"cedar": ALLOW_ALL, "since": "soon"}), 422, "/since")
    assert_problem(api.post(url, json=["not", "an", "object"]), 422, "")
    bad_id = SIMULATE.format(tenant=tenant, policy="Not_An_Id")
    assert_problem(api.post(bad_id, json={"cedar": ALLOW_ALL}), 422, "policy")
    not_json = api.post(url, content=b"{", headers={"content-type": "application/json"})
    assert_problem(not_json, 400, None)
    unknown = SIMULATE.format(tenant=new_tenant_id(), policy="open")
    assert_problem(api.post(unknown, json={"cedar": ALLOW_ALL}), 404, None)
    viewer = bearer("vic", tenant, "viewer")
    refused = httpx.post(f"{system}{url}", json={"cedar": ALLOW_ALL}, headers=viewer, timeout=10)
    assert_problem(refused, 403, None)


def test_health_is_public_and_reports_every_part(system: str) -> None:
    health = httpx.get(f"{system}/health", timeout=30)
    assert health.status_code == 200, health.text
    body = health.json()
    assert set(body["services"]) == {"kafka", "postgres", "registry", "redis", "s3", "search"}
    assert all(s["status"] == "ok" for s in body["services"].values()), body["services"]
    assert "core" in body["projection_lag"]
    assert {"worker", "kernel"} <= set(body["consumer_groups"])
    assert isinstance(body["dead_letters"], int)
