"""The walking skeleton end to end: HTTP -> aion.commands -> decider -> events -> Postgres -> HTTP.

Runs against the real stack and real Aion processes (API, Faust worker, projector).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from aion.settings import Settings
from schemas import catalog
from schemas.codec import Codec
from schemas.topics import COMMANDS, events_topic
from tests.stack.kafka_reading import reader


def new_tenant_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def high_watermark(settings: Settings, topic: str) -> int:
    """Records ever written to ``topic`` (the sum of its partitions' end offsets)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka, "group.id": "aion-tests-watermarks"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def commands_high_watermark(settings: Settings, topic: str = COMMANDS) -> int:
    """Commands produced so far to one stage's topic (a task's go to aion.tasks)."""
    return high_watermark(settings, topic)


def events_for(settings: Settings, aggregate_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event on aion.events.tenant keyed by this tenant, decoded."""
    topic = events_topic("tenant")
    codec = Codec(settings.registry)
    consumer = reader(settings)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        assignments, remaining = [], {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                assignments.append(TopicPartition(topic, p, low))
                remaining[p] = high
        consumer.assign(assignments)
        found = []
        deadline = time.monotonic() + 30
        while remaining and time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is None or message.error():
                continue
            if message.key() == aggregate_id.encode():
                found.append(codec.decode(topic, message.value()))
            if message.offset() + 1 >= remaining.get(message.partition(), 0):
                remaining.pop(message.partition(), None)
        return found
    finally:
        consumer.close()


def eventually(fetch: Any, timeout: float = 20.0, until: Any = None) -> httpx.Response:
    """Poll until a 200 (that also satisfies ``until``, when given) or the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        response = fetch()
        done = response.status_code == 200 and (until is None or until(response.json()))
        if done or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def assert_problem(response: httpx.Response, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    if field is not None:
        assert body["field"] == field, body
    return body


def test_create_then_read_from_the_read_model(api: httpx.Client) -> None:
    tenant = new_tenant_id()
    response = api.post("/v1/tenants", json={"tenant_id": tenant, "display_name": " Acme "})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "pending"
    assert accepted["position"]["topic"] == COMMANDS and accepted["position"]["offset"] >= 0
    assert response.headers["location"] == accepted["status_url"]

    read = eventually(lambda: api.get(f"/v1/tenants/{tenant}"))
    assert read.status_code == 200, read.text
    body = read.json()
    assert (body["tenant_id"], body["display_name"], body["status"], body["version"]) == (
        tenant,
        "Acme",
        "active",
        1,
    )
    assert body["labels"] == {}
    assert read.headers["etag"] == '"1"'

    status = eventually(
        lambda: api.get(accepted["status_url"]), until=lambda body: body["status"] != "pending"
    )
    assert status.json()["status"] == "accepted"
    assert status.json()["aggregate_version"] == 1


def test_waiting_for_the_outcome_returns_201(api: httpx.Client) -> None:
    tenant = new_tenant_id()
    response = api.post(
        "/v1/tenants",
        json={"tenant_id": tenant, "display_name": "Waits", "labels": {"team": "ml"}},
        headers={"Prefer": "wait=20"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/tenants/{tenant}"
    assert response.json()["status"] == "accepted"
    assert response.json()["event_ids"] and len(response.json()["event_ids"]) == 1


def test_a_second_create_is_rejected_by_the_decider(api: httpx.Client, settings: Settings) -> None:
    tenant = new_tenant_id()
    body = {"tenant_id": tenant, "display_name": "First"}
    assert api.post("/v1/tenants?wait=20", json=body).status_code == 201
    second = api.post("/v1/tenants?wait=20", json={**body, "display_name": "Second"})
    problem = assert_problem(second, 409, "/tenant_id")
    assert problem["type"].endswith("already-exists")
    assert problem["current_version"] == 1
    assert api.get(f"/v1/tenants/{tenant}").json()["display_name"] == "First"
    kinds = [name for name, _ in events_for(settings, tenant)]
    assert kinds.count("aion.tenant.TenantCreated") == 1
    assert kinds.count("aion.CommandRejected") == 1


def test_event_ids_are_deterministic_from_the_command_id(
    api: httpx.Client, settings: Settings
) -> None:
    from commands.model import event_id

    tenant = new_tenant_id()
    outcome = api.post("/v1/tenants?wait=20", json={"tenant_id": tenant, "display_name": "X"})
    [(name, event)] = events_for(settings, tenant)
    assert name == "aion.tenant.TenantCreated"
    envelope = event["envelope"]
    assert envelope["event_id"] == event_id(outcome.json()["command_id"], 0)
    assert (envelope["tenant_id"], envelope["aggregate_id"], envelope["aggregate_version"]) == (
        tenant,
        tenant,
        1,
    )
    assert envelope["traceparent"] and envelope["traceparent"].startswith("00-")


@pytest.mark.parametrize(
    ("content", "headers", "status", "field"),
    [
        (b'{"tenant_id": "x", ', {}, 400, ""),
        (b'{"display_name": "No id"}', {}, 422, "/tenant_id"),
        (b'{"tenant_id": 42, "display_name": "Num"}', {}, 422, "/tenant_id"),
        (b'{"tenant_id": "ok-id", "display_name": "X", "plan": "gold"}', {}, 422, "/plan"),
        (b'{"tenant_id": "ok-id", "display_name": "X", "labels": {"a": 1}}', {}, 422, "/labels/a"),
        (b'{"tenant_id": "Bad_Id", "display_name": "X"}', {}, 422, "/tenant_id"),
        (b'{"tenant_id": "ok-id", "display_name": "   "}', {}, 422, "/display_name"),
        (b'["not", "an", "object"]', {}, 422, "/"),
        (b'{"tenant_id": "ok-id", "display_name": "X"}', {"content-type": "text/plain"}, 415, None),
        (b'{"tenant_id": "ok-id", "display_name": "' + b"x" * 70_000 + b'"}', {}, 413, ""),
    ],
    ids=[
        "malformed",
        "missing",
        "wrong-type",
        "unknown-field",
        "map-value",
        "bad-id",
        "blank-name",
        "not-object",
        "content-type",
        "oversized",
    ],
)
def test_bad_input_is_refused_at_the_edge_and_nothing_is_produced(
    api: httpx.Client,
    settings: Settings,
    content: bytes,
    headers: dict[str, str],
    status: int,
    field: str | None,
) -> None:
    before = commands_high_watermark(settings)
    response = api.post(
        "/v1/tenants", content=content, headers={"content-type": "application/json", **headers}
    )
    assert_problem(response, status, field)
    assert commands_high_watermark(settings) == before


def test_an_oversized_body_without_content_length_is_cut_off(
    api: httpx.Client, settings: Settings
) -> None:
    before = commands_high_watermark(settings)

    def chunks() -> Any:
        yield b'{"tenant_id": "big", "display_name": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    response = api.post(
        "/v1/tenants", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "")
    assert commands_high_watermark(settings) == before


def test_unknown_tenant_and_command_are_404_problems(api: httpx.Client) -> None:
    assert_problem(api.get(f"/v1/tenants/{new_tenant_id()}"), 404, "tenant")
    assert_problem(api.get(f"/v1/commands/{uuid.uuid4()}"), 404, "command_id")
    assert_problem(api.get("/v1/nothing-here"), 404, None)


def test_invalid_wait_is_a_400_naming_the_parameter(api: httpx.Client) -> None:
    response = api.post("/v1/tenants?wait=soon", json={"tenant_id": "ok-id", "display_name": "X"})
    assert_problem(response, 400, "wait")


def test_openapi_health_readiness_and_metrics(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    assert "post" in spec["paths"]["/v1/tenants"]
    fields = catalog.record("aion.tenant.CreateTenant").payload_fields
    properties = spec["components"]["schemas"]["CreateTenant"]["properties"]
    assert set(properties) == {f["name"] for f in fields}
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz").json()
    assert ready["ready"] is True
    assert ready["checks"] == {"postgres": "ok", "kafka": "ok", "registry": "ok"}
    assert isinstance(ready["projection_lag"]["core"], int) and ready["projection_lag"]["core"] >= 0
    metrics = api.get("/metrics").text
    assert 'aion_projection_lag_messages{projection="core"}' in metrics
    assert (
        'aion_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/readyz"'
        in metrics
    )
