"""The v1 -> v2 change of TenantCreated: old events stay readable and mean what they meant."""

from __future__ import annotations

import io
import json

import fastavro

from commands import tenant
from schemas import catalog
from schemas.compatibility import RELEASED_DIR
from schemas.upcasting import UNLIMITED, upcast

CREATED = "aion.tenant.TenantCreated"
V1 = json.loads((RELEASED_DIR / "v1" / f"{CREATED}.avsc").read_text())
V2 = catalog.record(CREATED).schema


def v1_event() -> dict[str, object]:
    return {
        "envelope": {
            "event_id": "e",
            "event_type": CREATED,
            "command_id": "c",
            "correlation_id": "c",
            "causation_id": "c",
            "tenant_id": "old",
            "aggregate_type": "tenant",
            "aggregate_id": "old",
            "aggregate_version": 1,
            "occurred_at": 1_700_000_000_000,
            "actor": "a",
            "traceparent": None,
            "tracestate": None,
        },
        "tenant_id": "old",
        "display_name": "Old",
        "labels": {},
    }


def read_v1_with_v2() -> dict[str, object]:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(V1), v1_event())
    buffer.seek(0)
    value = fastavro.schemaless_reader(buffer, fastavro.parse_schema(V1), fastavro.parse_schema(V2))
    assert isinstance(value, dict)
    return value


def test_v1_lacks_limits_and_v2_has_them() -> None:
    assert "limits" not in {f["name"] for f in V1["fields"]}
    assert "limits" in {f["name"] for f in V2["fields"]}


def test_v1_data_is_readable_and_resolution_alone_gives_the_new_defaults() -> None:
    value = read_v1_with_v2()
    assert value["limits"] == tenant.default_limits()


def test_the_upcaster_gives_v1_tenants_unlimited_limits() -> None:
    value = upcast(CREATED, V1, read_v1_with_v2())
    assert value["limits"] == UNLIMITED
    assert value["display_name"] == "Old"


def test_v2_events_are_left_alone() -> None:
    value = {"limits": {"max_fuel": 5}}
    assert upcast(CREATED, V2, value) == value
    assert upcast("aion.tenant.UserAdded", V1, value) == value


def test_the_aggregate_upgrades_v1_state_the_same_way() -> None:
    stored_v1 = {
        "version": 1,
        "tenant_id": "old",
        "display_name": "Old",
        "status": "active",
        "labels": {},
    }
    state = tenant.aggregate.load(stored_v1)
    assert state.limits == UNLIMITED
    assert tenant.UNLIMITED == UNLIMITED  # commands/ may not import schemas/: kept in step here
    assert tenant.aggregate.load(None).limits == tenant.default_limits()
