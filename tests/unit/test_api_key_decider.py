"""The ApiKey aggregate's decider: create once, revoke once, fields checked, events valid Avro."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fastavro.validation import validate

from commands import api_key
from commands.model import Event, Rejection
from schemas import catalog
from tests.unit.test_model_policy_deciders import ACTIVE, command, tenant_context

KEYS = api_key.aggregate
KEY_ID = "0123456789abcdef"
SECRET_HASH = hashlib.sha256(b"secret").hexdigest()


def create(**overrides: Any) -> dict[str, Any]:
    return {
        "key_id": KEY_ID,
        "name": "ci",
        "roles": ["developer"],
        "secret_sha256": SECRET_HASH,
        **overrides,
    }


def decide(state: Any, type_: str, payload: dict[str, Any], **kw: Any) -> Any:
    return KEYS.handle(state, command(type_, payload, f"acme/{KEY_ID}", **kw), ACTIVE)


def created_state() -> Any:
    events = decide(KEYS.initial(), api_key.CREATE, create())
    assert isinstance(events, list)
    return KEYS.fold(KEYS.initial(), events)


def test_create_emits_a_valid_event_without_any_secret() -> None:
    events = decide(KEYS.initial(), api_key.CREATE, create(rate_per_s=2.5, burst=5))
    assert isinstance(events, list) and [e.type for e in events] == [api_key.CREATED]
    payload = events[0].payload
    assert payload["secret_sha256"] == SECRET_HASH and payload["roles"] == ["developer"]
    record = {"envelope": envelope_for_avro(), **payload}
    validate(record, catalog.record(api_key.CREATED).parsed, raise_errors=True)


def envelope_for_avro() -> dict[str, Any]:
    return {
        "event_id": "e",
        "event_type": api_key.CREATED,
        "command_id": "c",
        "correlation_id": "c",
        "causation_id": "c",
        "tenant_id": "acme",
        "aggregate_type": "api_key",
        "aggregate_id": f"acme/{KEY_ID}",
        "aggregate_version": 1,
        "occurred_at": 0,
        "actor": "alice",
        "traceparent": None,
        "tracestate": None,
        "command_outcome": True,
    }


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"key_id": "XYZ"}, "/key_id"),
        ({"name": " "}, "/name"),
        ({"name": "x" * 101}, "/name"),
        ({"roles": []}, "/roles"),
        ({"roles": ["platform-admin"]}, "/roles/0"),
        ({"secret_sha256": "abc"}, "/secret_sha256"),
        ({"rate_per_s": 0}, "/rate_per_s"),
        ({"rate_per_s": float("inf")}, "/rate_per_s"),
        ({"burst": 0}, "/burst"),
        ({"burst": True}, "/burst"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    decision = decide(KEYS.initial(), api_key.CREATE, create(**overrides))
    assert isinstance(decision, Rejection) and decision.field == field


def test_a_key_is_created_once() -> None:
    decision = decide(created_state(), api_key.CREATE, create())
    assert isinstance(decision, Rejection) and decision.code == "already_exists"


def test_the_payload_must_name_the_keyed_aggregate() -> None:
    decision = decide(KEYS.initial(), api_key.CREATE, create(key_id="fedcba9876543210"))
    assert isinstance(decision, Rejection) and decision.field == "/key_id"


def test_revoke_then_revoke_again_is_a_conflict() -> None:
    state = created_state()
    events = decide(state, api_key.REVOKE, {"key_id": KEY_ID, "reason": "leaked"})
    assert isinstance(events, list) and events == [
        Event(api_key.REVOKED, {"tenant_id": "acme", "key_id": KEY_ID, "reason": "leaked"})
    ]
    revoked = KEYS.fold(state, events)
    assert revoked.status == "revoked"
    again = decide(revoked, api_key.REVOKE, {"key_id": KEY_ID})
    assert isinstance(again, Rejection) and again.code == "conflict"


def test_revoking_an_unknown_key_is_not_found() -> None:
    decision = decide(KEYS.initial(), api_key.REVOKE, {"key_id": KEY_ID})
    assert isinstance(decision, Rejection) and decision.code == "not_found"


def test_a_suspended_tenant_creates_no_key() -> None:
    decision = KEYS.handle(
        KEYS.initial(),
        command(api_key.CREATE, create(), f"acme/{KEY_ID}"),
        tenant_context("suspended"),
    )
    assert isinstance(decision, Rejection) and decision.code == "suspended"
