"""Idempotency keys, optimistic concurrency and redelivered commands, on the real stack."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import redis
from confluent_kafka import Producer

from aion.settings import Settings
from schemas.topics import COMMANDS, TASKS, producer_config
from tests.stack.identity import admin_client
from tests.stack.raw_commands import create_tenant_value
from tests.stack.test_tenants_api import (
    assert_problem,
    commands_high_watermark,
    events_for,
    new_tenant_id,
)


def test_the_same_key_and_body_returns_the_first_response(
    api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant_id()
    body = {"tenant_id": tenant, "display_name": "Idem"}
    headers = {"Idempotency-Key": f"key-{tenant}", "Prefer": "wait=20"}
    before = commands_high_watermark(settings)
    first = api.post("/v1/tenants", json=body, headers=headers)
    again = api.post("/v1/tenants", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert commands_high_watermark(settings) == before + 1
    assert [n for n, _ in events_for(settings, tenant)] == ["aion.tenant.TenantCreated"]


def test_a_retried_task_without_an_id_is_the_first_task_not_a_conflict(
    api: httpx.Client, settings: Settings
) -> None:
    """The API makes up a task id when the body has none; the retry's body is the caller's,
    so the same key and body replay the first answer (the same command and task)."""
    tenant = new_tenant_id()
    assert api.post("/v1/tenants", json={"tenant_id": tenant, "display_name": "T"},
                    headers={"Prefer": "wait=20"}).status_code == 201  # fmt: skip
    body = {"agent_name": "echo", "input": "{}"}
    headers = {"Idempotency-Key": f"task-{tenant}"}
    before = commands_high_watermark(settings, TASKS)
    first = api.post(f"/v1/tenants/{tenant}/tasks", json=body, headers=headers)
    again = api.post(f"/v1/tenants/{tenant}/tasks", json=body, headers=headers)
    assert first.status_code == 202, first.text
    assert again.status_code == 202, again.text
    assert again.json()["command_id"] == first.json()["command_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert commands_high_watermark(settings, TASKS) == before + 1


def test_the_same_key_with_another_body_is_a_409(api: httpx.Client, settings: Settings) -> None:
    tenant = new_tenant_id()
    key = {"Idempotency-Key": f"key-{tenant}"}
    assert (
        api.post(
            "/v1/tenants", json={"tenant_id": tenant, "display_name": "A"}, headers=key
        ).status_code
        == 202
    )
    before = commands_high_watermark(settings)
    other = api.post("/v1/tenants", json={"tenant_id": tenant, "display_name": "B"}, headers=key)
    assert_problem(other, 409, "Idempotency-Key")
    assert commands_high_watermark(settings) == before


def test_the_same_key_sent_concurrently_produces_one_command(
    system: str, settings: Settings
) -> None:
    tenant = new_tenant_id()
    body = {"tenant_id": tenant, "display_name": "Race"}
    headers = {"Idempotency-Key": f"race-{tenant}"}
    before = commands_high_watermark(settings)

    def send(_: int) -> httpx.Response:
        with admin_client(system, timeout=30) as client:
            return client.post("/v1/tenants", json=body, headers=headers)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(send, range(8)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["command_id"] for r in responses}) == 1
    assert commands_high_watermark(settings) == before + 1


def left_by_a_crash(settings: Settings, tenant: str, key: str, owner: str) -> None:
    """Turn an answered claim back into what an API killed before producing leaves behind:
    the claim (with the digest the API computed) of an owner that never produced."""
    client = redis.Redis.from_url(settings.redis)
    name = f"aion:{tenant}:idempotency:{key}"
    record = json.loads(client.get(name) or b"{}")
    record.update(owner=owner, position=None, response=None)
    client.set(name, json.dumps(record), ex=3600)


def test_a_claim_whose_api_died_before_producing_is_taken_over_by_the_retry(
    api: httpx.Client, settings: Settings
) -> None:
    """The attack: the API is killed between claiming the key and producing. Before, the
    retry was answered 202 "pending" for a command never produced: the command was lost."""
    tenant = new_tenant_id()
    body = {"tenant_id": tenant, "display_name": "Crash"}
    headers = {"Idempotency-Key": f"crash-{tenant}"}
    first = api.post("/v1/tenants", json=body, headers=headers)
    assert first.status_code == 202, first.text
    left_by_a_crash(settings, tenant, headers["Idempotency-Key"], owner="killed-api")
    before = commands_high_watermark(settings)
    retry = api.post("/v1/tenants", json=body, headers={**headers, "Prefer": "wait=20"})
    assert retry.status_code in (200, 201), retry.text  # produced again, then decided
    assert "idempotent-replayed" not in retry.headers  # taken over, not replayed
    assert retry.json()["command_id"] == first.json()["command_id"]
    assert commands_high_watermark(settings) == before + 1
    # The same command id twice on the topic: the decider applies it once.
    assert [n for n, _ in events_for(settings, tenant)] == ["aion.tenant.TenantCreated"]


def test_a_claim_whose_api_is_alive_and_producing_is_a_409_to_retry(
    api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant_id()
    body = {"tenant_id": tenant, "display_name": "Slow"}
    headers = {"Idempotency-Key": f"slow-{tenant}"}
    assert api.post("/v1/tenants", json=body, headers=headers).status_code == 202
    redis.Redis.from_url(settings.redis).set("aion:api:alive:slow-api", b"1", ex=30)
    left_by_a_crash(settings, tenant, headers["Idempotency-Key"], owner="slow-api")
    before = commands_high_watermark(settings)
    retry = api.post("/v1/tenants", json=body, headers=headers)
    problem = assert_problem(retry, 409, "Idempotency-Key")
    assert problem["type"].endswith("idempotency-key-in-flight")
    assert retry.headers["retry-after"] == "1"
    assert commands_high_watermark(settings) == before  # a live owner is never overtaken


def test_a_live_owners_claim_left_unproduced_too_long_is_taken_over(
    api: httpx.Client, settings: Settings
) -> None:
    """Issue 17, finding 15: Redis was killed while the API produced, and restored the claim
    from its append log; the API lives on, but its request never finished the claim. Its
    retries got 409 for 24 h; past IN_FLIGHT_MAX_S the claim is taken over."""
    tenant = new_tenant_id()
    body = {"tenant_id": tenant, "display_name": "Stuck"}
    headers = {"Idempotency-Key": f"stuck-{tenant}"}
    assert api.post("/v1/tenants", json=body, headers=headers).status_code == 202
    client = redis.Redis.from_url(settings.redis)
    client.set("aion:api:alive:living-api", b"1", ex=30)
    left_by_a_crash(settings, tenant, headers["Idempotency-Key"], owner="living-api")
    name = f"aion:{tenant}:idempotency:{headers['Idempotency-Key']}"
    record = json.loads(client.get(name) or b"{}")
    record["claimed_at"] = time.time() - 31
    client.set(name, json.dumps(record), ex=3600)
    retry = api.post("/v1/tenants", json=body, headers={**headers, "Prefer": "wait=20"})
    assert retry.status_code in (200, 201), retry.text
    assert [n for n, _ in events_for(settings, tenant)] == ["aion.tenant.TenantCreated"]


def test_a_command_delivered_twice_changes_state_once(
    settings: Settings, api: httpx.Client
) -> None:
    """A producer retry or a replay puts the same command (same id) on the topic twice."""
    tenant = new_tenant_id()
    command_id, value = create_tenant_value(settings, tenant, "Twice")
    producer = Producer(producer_config(settings.kafka))
    for _ in range(2):
        producer.produce(COMMANDS, key=tenant.encode(), value=value)
    producer.flush(10)
    deadline = time.monotonic() + 20
    while api.get(f"/v1/commands/{command_id}").json().get("status") != "accepted":
        assert time.monotonic() < deadline, "the command was not decided"
        time.sleep(0.1)
    time.sleep(1)  # give a (wrong) second processing the time to show up
    assert [n for n, _ in events_for(settings, tenant)] == ["aion.tenant.TenantCreated"]


def test_if_match_with_a_stale_version_is_a_409_with_the_current_version(
    api: httpx.Client,
) -> None:
    tenant = new_tenant_id()
    response = api.post(
        "/v1/tenants?wait=20",
        json={"tenant_id": tenant, "display_name": "V"},
        headers={"If-Match": '"4"'},
    )
    problem = assert_problem(response, 409, None)
    assert problem["type"].endswith("version-conflict")
    assert problem["current_version"] == 0
    assert api.get(f"/v1/tenants/{tenant}").status_code == 404


def test_malformed_if_match_and_idempotency_key_are_400(api: httpx.Client) -> None:
    body = {"tenant_id": new_tenant_id(), "display_name": "H"}
    assert_problem(
        api.post("/v1/tenants", json=body, headers={"If-Match": "latest"}), 400, "If-Match"
    )
    assert_problem(
        api.post("/v1/tenants", json=body, headers={"Idempotency-Key": "x" * 300}),
        400,
        "Idempotency-Key",
    )
