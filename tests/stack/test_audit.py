"""The audit log on the real stack: commands, a policy change, a rejection and the security
facts the API records (`api.audit_events`, produced to `aion.audit` by the same code the API
runs) come back from `GET /v1/tenants/{t}/audit`, classified, filtered, paged, and only to
their own tenant."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from aion.settings import Settings
from api import audit_events
from api.principal import Principal
from api.producer import AsyncProducer, Delivered
from api.state import ApiState
from schemas.codec import Codec
from tests.stack.identity import admin_client
from tests.stack.test_tenants_api import new_tenant_id

WAIT = {"Prefer": "wait=20"}
ANA = Principal("ana", None, frozenset({"admin"}), via="session")
MALLORY = Principal("mallory", "elsewhere", frozenset({"viewer"}))
ADMIN = Principal("root", None, frozenset({"platform-admin"}))


@pytest.fixture(scope="module")
def state(system: str, settings: Settings) -> Iterator[ApiState]:
    """Just what audit_events uses (the producer and the codec), as the API holds them."""
    given: dict[str, Any] = {
        "settings": settings,
        "producer": AsyncProducer(settings.kafka),
        "codec": Codec(settings.registry),
    }
    api_state = ApiState(**{f.name: given.get(f.name) for f in fields(ApiState)})
    yield api_state
    api_state.producer.close()


def create_tenant(api: httpx.Client) -> str:
    tenant = new_tenant_id()
    body = {"tenant_id": tenant, "display_name": "Audited"}
    assert api.post("/v1/tenants", json=body, headers=WAIT).status_code == 201
    return tenant


def record_security_facts(state: ApiState, tenant: str, other: str) -> Delivered:
    """A sign-in and out of ana, mallory refused on this tenant and on the other one, a platform
    admin's sign-in; returns a position on `aion.audit` after the tenant's facts."""
    ana = Principal(ANA.subject, tenant, ANA.roles, via=ANA.via)
    path = f"/v1/tenants/{tenant}/tasks"

    async def record() -> Delivered:
        await audit_events.signed_in(state, ana, "oidc", "session-1")
        await audit_events.access_denied(
            state, MALLORY, tenant, "task.submit", "POST", path, "another tenant's path", 403
        )
        await audit_events.signed_out(state, ana, "session-1")
        await audit_events.access_denied(
            state, MALLORY, other, "tenant.read", "GET", f"/v1/tenants/{other}", "no role", 403
        )
        await audit_events.signed_in(state, ADMIN, "oidc", None)
        # One more fact keyed by the tenant: its position is after all the tenant's facts.
        return await audit_events.record(
            state, audit_events.SIGNED_OUT, tenant, "ana", {"subject": "ana", "session_id": None}
        )

    return asyncio.run(record())


@pytest.fixture(scope="module")
def audited(system: str, state: ApiState) -> dict[str, Any]:
    """A tenant with a user, a policy, a rejected command and security facts; another tenant."""
    with admin_client(system) as api:
        started = datetime.now(UTC)
        tenant, other = create_tenant(api), create_tenant(api)
        t = f"/v1/tenants/{tenant}"
        user = {"user_id": "ana", "display_name": "Ana", "roles": ["admin"]}
        assert api.post(f"{t}/users", json=user, headers=WAIT).status_code == 201
        again = api.post(f"{t}/users", json=user, headers=WAIT)
        assert again.status_code == 409, again.text  # rejected: ana is a user already
        policy = {"cedar": "permit(principal, action, resource);", "description": "all"}
        put = api.put(f"{t}/policies/allow-all", json=policy, headers=WAIT)
        assert put.status_code in (200, 201), put.text
        delivered = record_security_facts(state, tenant, other)
        after = f"{delivered.topic}:{delivered.partition}:{delivered.offset}"
        listed = api.get(f"{t}/audit", params={"after": after, "limit": 200})
        assert listed.status_code == 200, listed.text
        assert listed.headers["Aion-Consistency"] == "after-position"
        return {
            "tenant": tenant,
            "other": other,
            "started": started,
            "after": after,
            "items": listed.json()["items"],
        }


def entries(items: list[dict[str, Any]], kind: str, action: str | None = None) -> list[Any]:
    return [i for i in items if i["kind"] == kind and action in (None, i["action"])]


def test_each_fact_is_one_entry_with_its_kind_actor_and_outcome(audited: dict[str, Any]) -> None:
    items = audited["items"]
    [created] = entries(items, "command", "TenantCreated")
    [added] = entries(items, "command", "UserAdded")
    [refused] = [i for i in items if i["outcome"] == "rejected"]
    assert (refused["kind"], refused["action"], refused["target"]) == (
        "command",
        "AddUser",
        f"tenant/{audited['tenant']}",
    )
    assert refused["detail"]["code"] == "already_exists"
    assert refused["command_id"] and refused["command_id"] != added["command_id"]
    [policy] = entries(items, "policy_change")
    assert (policy["action"], policy["target"], policy["outcome"]) == (
        "PolicyPut",
        "policy/allow-all",
        "ok",
    )
    assert policy["detail"]["policy_id"] == "allow-all"
    # Everything sent over HTTP is the caller's: the platform admin of tests/stack/identity.py.
    assert {created["actor"], added["actor"], refused["actor"], policy["actor"]} == {"test-admin"}

    [login] = entries(items, "login")
    assert (login["actor"], login["outcome"], login["detail"]["method"]) == ("ana", "ok", "oidc")
    assert login["detail"]["session_id"] == "session-1" and login["detail"]["roles"] == ["admin"]
    logouts = entries(items, "logout")
    assert len(logouts) == 2 and {i["actor"] for i in logouts} == {"ana"}
    [denied] = entries(items, "denial")
    assert (denied["actor"], denied["outcome"], denied["action"]) == (
        "mallory",
        "denied",
        "AccessDenied",
    )
    assert denied["detail"] == {
        "method": "POST",
        "path": f"/v1/tenants/{audited['tenant']}/tasks",
        "action": "task.submit",
        "reason": "another tenant's path",
        "status": 403,
        "via": "token",
        "roles": ["viewer"],
        "count": 1,  # one refusal (api/denials.py counts repeated ones into one entry)
    }
    assert denied["target"] == denied["detail"]["path"] and denied["command_id"] is None
    assert all(i["position"].count(":") == 2 for i in items)
    assert len({i["position"] for i in items}) == len(items)


def test_the_log_is_newest_first(audited: dict[str, Any]) -> None:
    times = [i["occurred_at"] for i in audited["items"]]
    assert times == sorted(times, reverse=True)
    assert audited["items"][-1]["action"] == "TenantCreated"


def test_another_tenants_entries_never_appear(api: httpx.Client, audited: dict[str, Any]) -> None:
    tenant, other = audited["tenant"], audited["other"]
    assert not [i for i in audited["items"] if other in str(i)]
    deadline = time.monotonic() + 30  # its denial may sit on another partition than `after`
    while True:
        theirs = api.get(f"/v1/tenants/{other}/audit").json()["items"]
        actions = {i["action"] for i in theirs}
        if actions == {"TenantCreated", "AccessDenied"} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert actions == {"TenantCreated", "AccessDenied"}
    assert not [i for i in theirs if tenant in str(i)]
    # A cursor of one tenant's log carried to another's reaches nothing of the first.
    first = api.get(f"/v1/tenants/{tenant}/audit", params={"limit": 1}).json()
    carried = api.get(
        f"/v1/tenants/{other}/audit", params={"cursor": first["next_cursor"], "limit": 200}
    )
    assert carried.status_code == 200
    assert not [i for i in carried.json()["items"] if tenant in str(i)]


def test_a_platform_admins_sign_in_is_recorded_under_the_platform(
    audited: dict[str, Any], settings: Settings
) -> None:
    with psycopg.connect(settings.database) as conn:
        rows = conn.execute(
            "select kind, actor from audit_log where tenant_id = %s and occurred_at >= %s",
            (audit_events.PLATFORM, audited["started"]),
        ).fetchall()
    assert ("login", "root") in rows


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"kind": "denial"}, {"AccessDenied"}),
        ({"kind": "policy_change"}, {"PolicyPut"}),
        ({"kind": "login"}, {"SignedIn"}),
        ({"actor": "ana", "kind": "logout"}, {"SignedOut"}),
        ({"actor": "mallory"}, {"AccessDenied"}),
        ({"outcome": "rejected"}, {"AddUser"}),
        ({"actor": "nobody"}, set()),
    ],
)
def test_filters(
    api: httpx.Client, audited: dict[str, Any], params: dict[str, str], expected: set[str]
) -> None:
    found = api.get(f"/v1/tenants/{audited['tenant']}/audit", params=params)
    assert found.status_code == 200, found.text
    assert {i["action"] for i in found.json()["items"]} == expected


def test_since_and_until_bound_the_time(api: httpx.Client, audited: dict[str, Any]) -> None:
    url = f"/v1/tenants/{audited['tenant']}/audit"
    started = audited["started"] - timedelta(seconds=1)
    later = datetime.now(UTC) + timedelta(minutes=1)
    within = api.get(url, params={"since": started.isoformat(), "until": later.isoformat()})
    assert len(within.json()["items"]) == len(audited["items"])
    assert api.get(url, params={"since": later.isoformat()}).json()["items"] == []
    assert api.get(url, params={"until": started.isoformat()}).json()["items"] == []
    newest = audited["items"][0]["occurred_at"]
    only_newest = api.get(url, params={"since": newest}).json()["items"]
    assert only_newest and all(i["occurred_at"] == newest for i in only_newest)


def test_cursors_page_through_the_whole_log_once(
    api: httpx.Client, audited: dict[str, Any]
) -> None:
    url = f"/v1/tenants/{audited['tenant']}/audit"
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = api.get(url, params=params).json()
        assert len(page["items"]) <= 2
        seen += [i["position"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": page["next_cursor"]}
    assert seen == [i["position"] for i in audited["items"]]


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"kind": "everything"}, 422, "kind"),
        ({"outcome": "maybe"}, 422, "outcome"),
        ({"since": "yesterday"}, 422, "since"),
        ({"until": "2026-13-40"}, 422, "until"),
        ({"since": "2026-11-27", "until": "2026-11-26"}, 422, "until"),
        ({"limit": "1000"}, 422, "limit"),
        ({"cursor": "not-a-cursor"}, 400, "cursor"),
        ({"after": "nowhere"}, 422, "after"),
    ],
)
def test_bad_filters_are_problems_naming_the_parameter(
    api: httpx.Client, audited: dict[str, Any], params: dict[str, str], status: int, field: str
) -> None:
    answer = api.get(f"/v1/tenants/{audited['tenant']}/audit", params=params)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == field


def test_an_unknown_tenant_has_no_audit_log(api: httpx.Client) -> None:
    answer = api.get(f"/v1/tenants/{new_tenant_id()}/audit")
    assert answer.status_code == 404 and answer.json()["field"] == "tenant"
