"""The audit events the API produces serialise with their schemas, in the envelope it builds."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest

from api.audit_events import ACCESS_DENIED, SIGNED_IN, SIGNED_OUT, envelope
from projections import audit
from schemas import catalog


def test_the_api_and_the_projection_name_the_same_records() -> None:
    assert (SIGNED_IN, SIGNED_OUT, ACCESS_DENIED) == (
        audit.SIGNED_IN,
        audit.SIGNED_OUT,
        audit.ACCESS_DENIED,
    )


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        (SIGNED_IN, {"method": "api_key", "subject": "key:k1", "roles": ["viewer"],
                     "session_id": None, "token_id": "k1"}),
        (SIGNED_OUT, {"subject": "ana", "session_id": "s1"}),
        (ACCESS_DENIED, {"subject": "anonymous", "via": "", "roles": [], "method": "GET",
                         "path": "/v1/tenants/acme", "action": "tenant.read",
                         "reason": "no credentials", "status": 401, "count": 1,
                         "first_at": None, "last_at": None}),
        (ACCESS_DENIED, {"subject": "eve", "via": "token", "roles": ["admin"], "method": "GET",
                         "path": "/v1/tenants/acme/agents", "action": "GET /v1/tenants/...",
                         "reason": "another tenant", "status": 403, "count": 41,
                         "first_at": datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
                         "last_at": datetime(2026, 12, 7, 12, 1, 0, 250000, tzinfo=UTC)}),
    ],
)  # fmt: skip
def test_audit_events_serialise_with_the_envelope_the_api_builds(
    name: str, payload: dict[str, Any]
) -> None:
    rec = catalog.record(name)
    assert rec.is_event
    value = {"envelope": envelope(name, "acme", "ana"), **payload}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, rec.parsed, value)
    buf.seek(0)
    back: Any = fastavro.schemaless_reader(buf, rec.parsed)
    assert back["envelope"]["command_outcome"] is False
    assert back["envelope"]["tenant_id"] == "acme" and back["envelope"]["actor"] == "ana"
    assert {k: v for k, v in back.items() if k != "envelope"} == payload
