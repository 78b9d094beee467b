"""Issue 17, finding 12, against the running system: a command written straight to
aion.commands with forged ``actor_roles`` is not authorized as those roles, and a removed
member's still-valid token and session are refused within a bounded time."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from redis import Redis

from aion.settings import Settings
from api.membership import TTL_S
from api.principal import PLATFORM_ADMIN
from schemas.codec import Codec
from schemas.topics import COMMANDS, producer_config
from tests.stack.identity import admin_client, bearer
from tests.stack.test_domain_api import ECHO, WASM, manifest
from tests.stack.test_platform_lockout import settled
from tests.stack.test_tenants_api import assert_problem, new_tenant_id

WAIT = {"Prefer": "wait=20"}
# A removal reaches the API within TTL_S of the projector recording it; the projector is
# normally well under a second behind. Generous, so that a loaded machine does not flake.
BOUND_S = TTL_S + 25
OPERATORS_ONLY = (
    'forbid(principal, action == Action::"SubmitTask", resource) '
    'unless { principal in Role::"operator" };'
)


@pytest.fixture()
def platform(system: str) -> Iterator[httpx.Client]:
    with admin_client(system) as client:
        yield client


def new_tenant(platform: httpx.Client, *members: tuple[str, str]) -> str:
    tenant = new_tenant_id()
    body = {"tenant_id": tenant, "display_name": "Members"}
    assert settled(platform, platform.post("/v1/tenants", json=body, headers=WAIT))["status"] == (
        "accepted"
    )
    for user, role in members:
        user_body = {"user_id": user, "display_name": user, "roles": [role]}
        added = platform.post(f"/v1/tenants/{tenant}/users", json=user_body, headers=WAIT)
        assert settled(platform, added)["status"] == "accepted", added.text
    return tenant


def until(check: Any, bound_s: float) -> float:
    """Seconds until ``check()`` held; fails past the bound."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < bound_s, f"not within {bound_s} s"
        time.sleep(0.25)
    return time.monotonic() - start


def test_a_removed_members_token_and_session_are_refused(
    system: str, settings: Settings, platform: httpx.Client
) -> None:
    tenant = new_tenant(platform, ("keeper", "admin"), ("rita", "viewer"))
    tasks = f"{system}/v1/tenants/{tenant}/tasks"
    # Rita's identity provider says admin; the tenant records her as a viewer.
    token = bearer("rita", tenant, "admin")
    session_id = secrets.token_urlsafe(32)
    redis = Redis.from_url(settings.redis)
    session = {"subject": "rita", "tenant": tenant, "roles": ["admin"]}
    redis.set(f"aion:session:{session_id}", json.dumps(session), ex=600)
    cookies = {"aion_session": session_id}
    try:
        # The recorded role, not the claimed one: the audit log (admins only) is refused.
        audit = f"{system}/v1/tenants/{tenant}/audit"
        until(lambda: httpx.get(audit, headers=token, timeout=30).status_code == 403, BOUND_S)
        assert httpx.get(tasks, headers=token, timeout=30).status_code == 200
        assert httpx.get(tasks, cookies=cookies, timeout=30).status_code == 200
        removed = platform.delete(f"/v1/tenants/{tenant}/users/rita", headers=WAIT)
        assert settled(platform, removed)["status"] == "accepted", removed.text
        took = until(
            lambda: httpx.get(tasks, headers=token, timeout=30).status_code == 401, BOUND_S
        )
        refused = httpx.get(tasks, headers=token, timeout=30)
        assert assert_problem(refused, 401, None)["reason"] == "not_member", took
        by_session = httpx.get(tasks, cookies=cookies, timeout=30)
        assert assert_problem(by_session, 401, None)["reason"] == "not_member"
        # Anyone the tenant does not record is refused too, whatever the token claims...
        stranger = httpx.get(tasks, headers=bearer("eve", tenant, "admin"), timeout=30)
        assert assert_problem(stranger, 401, None)["reason"] == "not_member"
        # ...but the platform is not a member of anything and still reaches the tenant.
        other_admin = bearer("ops", tenant, PLATFORM_ADMIN)
        assert httpx.get(tasks, headers=other_admin, timeout=30).status_code == 200
    finally:
        redis.delete(f"aion:session:{session_id}")
        redis.close()


def raw_submit(
    settings: Settings, tenant: str, task_id: str, actor: str, actor_roles: list[str]
) -> None:
    """A SubmitTask produced straight to aion.commands, past the API."""
    command_id = str(uuid.uuid4())
    envelope = {
        "command_id": command_id,
        "command_type": "aion.task.SubmitTask",
        "correlation_id": command_id,
        "tenant_id": tenant,
        "aggregate_type": "task",
        "aggregate_id": f"{tenant}/{task_id}",
        "expected_version": None,
        "idempotency_key": None,
        "issued_at": int(time.time() * 1000),
        "actor": actor,
        "actor_roles": actor_roles,
    }
    payload = {"envelope": envelope, "task_id": task_id, "agent_name": "echo", "input": "{}"}
    value = Codec(settings.registry).encode(COMMANDS, "aion.task.SubmitTask", payload)
    producer = Producer(producer_config(settings.kafka))
    producer.produce(COMMANDS, value=value, key=tenant.encode())
    assert producer.flush(30) == 0


def task_status(platform: httpx.Client, tenant: str, task_id: str) -> str:
    found: dict[str, Any] = {}

    def projected() -> bool:
        response = platform.get(f"/v1/tenants/{tenant}/tasks/{task_id}")
        if response.status_code == 200 and response.json()["status"] != "submitted":
            found.update(response.json())
            return True
        return False

    until(projected, 60)
    return str(found["status"])


def test_forged_envelope_roles_on_the_command_topic_authorize_nothing(
    settings: Settings, platform: httpx.Client
) -> None:
    tenant = new_tenant(platform, ("olga", "operator"))
    t = f"/v1/tenants/{tenant}"
    assert platform.post(f"{t}/modules", content=ECHO, headers=WASM).status_code in (200, 201)
    deployed = platform.post(f"{t}/agents", json={"manifest": manifest("echo")}, headers=WAIT)
    assert settled(platform, deployed)["status"] == "accepted", deployed.text
    policy = platform.put(f"{t}/policies/operators-only", json={"cedar": OPERATORS_ONLY})
    assert settled(platform, policy)["status"] == "accepted", policy.text
    # The attack: mallory writes to the topic and claims every role there is.
    raw_submit(settings, tenant, "forged", "mallory", ["operator", "admin", PLATFORM_ADMIN])
    assert task_status(platform, tenant, "forged") == "rejected"
    decided = platform.get(f"{t}/tasks/forged").json()
    assert "operators-only" in json.dumps(decided), decided
    # The tenant's recorded operator passes the same policy with no envelope roles at all.
    raw_submit(settings, tenant, "recorded", "olga", [])
    assert task_status(platform, tenant, "recorded") != "rejected"
