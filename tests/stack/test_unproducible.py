"""A command whose effects cannot be produced is rejected, and its partition goes on (issue 16,
decision 49). Each fault is real: a message over the producer's limit, a value the encoder
refuses (a failpoint), and the broker itself refusing a topic's messages."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from aion.settings import Settings
from schemas.topics import COMMANDS, MAX_MESSAGE_BYTES, events_topic, producer_config
from streams.producibility import fingerprint
from tests.conftest import AionProcesses
from tests.stack.raw_commands import create_tenant_value
from tests.stack.test_tenants_api import events_for, new_tenant_id

TENANTS = events_topic("tenant")
LOWERED = 4096  # the broker's limit on aion.events.tenant while the refusal test runs


def create_tenant_command(settings: Settings, tenant: str, display_name: str) -> str:
    """Produce a CreateTenant straight to aion.commands (past the API's checks); its id."""
    command_id, value = create_tenant_value(settings, tenant, display_name)
    producer = Producer(producer_config(settings.kafka, **{"message.max.bytes": 1_048_576}))
    producer.produce(COMMANDS, key=tenant.encode(), value=value)
    assert producer.flush(30) == 0
    return command_id


def outcome(api: httpx.Client, command_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = api.get(f"/v1/commands/{command_id}")
        if found.status_code == 200 and found.json().get("status") != "pending":
            return dict(found.json())
        assert time.monotonic() < deadline, f"command {command_id} was not decided"
        time.sleep(0.2)


def assert_one_content_per_event_id(events: list[tuple[str, dict[str, Any]]]) -> None:
    contents: dict[str, set[str]] = {}
    for _, value in events:
        contents.setdefault(value["envelope"]["event_id"], set()).add(fingerprint(value))
    assert all(len(found) == 1 for found in contents.values()), contents


def test_a_command_whose_event_is_over_the_limit_is_rejected_and_the_tenant_goes_on(
    api: httpx.Client, settings: Settings
) -> None:
    """The event would pass the producer's max request size (1,000,000 bytes), the command
    itself does not pass it: refused while planning, nothing of it sent."""
    tenant = new_tenant_id()
    command_id = create_tenant_command(settings, tenant, "x" * 1_010_000)
    refused = outcome(api, command_id)
    assert (refused["status"], refused["code"]) == ("rejected", "too_large")
    assert "aion.tenant.TenantCreated on aion.events.tenant" in refused["reason"]
    assert len(refused["reason"]) <= 500
    created = api.post("/v1/tenants?wait=20", json={"tenant_id": tenant, "display_name": "After"})
    assert created.status_code == 201, created.text
    events = events_for(settings, tenant)
    assert [name for name, _ in events] == ["aion.CommandRejected", "aion.tenant.TenantCreated"]
    assert "x" * 100 not in str(events[0][1])  # the rejection does not carry the payload


@pytest.fixture()
def misfitting_worker(processes: AionProcesses) -> Iterator[None]:
    """A worker whose encoder is handed a value that does not fit its schema for every
    SuspendTenant (the failpoint: no decider makes such a value)."""
    processes.stop_role("worker")
    processes.start_role(
        "worker",
        AION_FAILPOINTS="unencodable@aion.tenant.SuspendTenant",
        AION_WORKER_ID="misfit-test",
    )
    try:
        processes.wait_ready()
        yield
    finally:
        processes.stop_role("worker")
        processes.start_role("worker")
        processes.wait_ready()


def test_a_value_that_does_not_fit_its_schema_is_rejected_and_the_tenant_goes_on(
    misfitting_worker: None, api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant_id()
    created = api.post("/v1/tenants?wait=20", json={"tenant_id": tenant, "display_name": "M"})
    assert created.status_code == 201, created.text
    suspended = api.post(f"/v1/tenants/{tenant}/suspend?wait=20", json={"reason": "test"})
    assert suspended.status_code == 422, suspended.text
    problem = suspended.json()
    assert problem["type"].endswith("unencodable")
    assert "aion.tenant.TenantSuspended" in problem["detail"]
    assert "aggregate_version" in problem["detail"]
    # The partition goes on, and the tenant was never suspended.
    added = api.post(
        f"/v1/tenants/{tenant}/users?wait=20",
        json={"user_id": "ana", "display_name": "Ana", "roles": ["viewer"]},
    )
    assert added.status_code == 201, added.text
    assert api.get(f"/v1/tenants/{tenant}").json()["status"] == "active"


def set_tenant_topic_limit(settings: Settings, limit: int) -> None:
    """Alter aion.events.tenant's max.message.bytes and wait until the broker reports it."""
    admin = AdminClient({"bootstrap.servers": settings.kafka})
    entry = ConfigEntry(
        "max.message.bytes", str(limit), incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ResourceType.TOPIC, TENANTS, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    deadline = time.monotonic() + 30
    while True:
        [described] = admin.describe_configs([ConfigResource(ResourceType.TOPIC, TENANTS)]).values()
        if described.result(timeout=30)["max.message.bytes"].value == str(limit):
            return
        assert time.monotonic() < deadline, "the broker did not take the new limit"
        time.sleep(0.2)


@pytest.fixture()
def lowered_tenant_topic(settings: Settings) -> Iterator[None]:
    set_tenant_topic_limit(settings, LOWERED)
    try:
        yield
    finally:
        set_tenant_topic_limit(settings, MAX_MESSAGE_BYTES)


def test_a_message_the_broker_refuses_is_rejected_and_the_tenant_goes_on(
    lowered_tenant_topic: None, api: httpx.Client, settings: Settings
) -> None:
    """The worker believes the topic takes ~1 MB; the broker now takes 4 KiB: the refusal comes
    from the broker, after sending (MESSAGE_TOO_LARGE, not retriable)."""
    refused: dict[str, Any] = {}
    for _ in range(5):  # until the broker enforces the new limit (it applies it asynchronously)
        tenant = new_tenant_id()
        # Random text: the limit is on the compressed batch, and a repeated letter shrinks.
        name = secrets.token_urlsafe(LOWERED * 3 // 2)  # 8 KiB of text
        refused = outcome(api, create_tenant_command(settings, tenant, name))
        if refused["status"] == "rejected":
            break
    assert (refused["status"], refused["code"]) == ("rejected", "broker_refused")
    assert refused["reason"] == (
        "Kafka refused aion.tenant.TenantCreated on aion.events.tenant: MSG_SIZE_TOO_LARGE"
    )
    # The partition goes on while the limit is still low...
    other = {"tenant_id": new_tenant_id(), "display_name": "S"}
    small = api.post("/v1/tenants?wait=20", json=other)
    assert small.status_code == 201, small.text
    # ...and the refused tenant can be created for real: its refusal changed no state.
    created = api.post("/v1/tenants?wait=20", json={"tenant_id": tenant, "display_name": "After"})
    assert created.status_code == 201, created.text
    events = events_for(settings, tenant)
    assert [name for name, _ in events] == ["aion.CommandRejected", "aion.tenant.TenantCreated"]
    assert_one_content_per_event_id(events)
