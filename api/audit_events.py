"""Security facts the API observes, produced to `aion.audit` for the audit log.

A sign-in, a sign-out and a refused request change no aggregate, so no decider sees them: the
API records them itself, keyed by the tenant they concern (as commands are), in the events'
envelope so that the audit projection reads them like any event. Every function waits for the
broker's ack and raises when producing fails: whether to refuse the request then is the
caller's decision.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate

from api.producer import Delivered
from schemas.topics import AUDIT

if TYPE_CHECKING:  # types only: the auth modules import this one, and no cycle can form
    from api.principal import Principal
    from api.state import ApiState

SIGNED_IN = "aion.audit.SignedIn"
SIGNED_OUT = "aion.audit.SignedOut"
ACCESS_DENIED = "aion.audit.AccessDenied"
# The key and tenant of a platform admin's sign-in, who names no tenant: not a valid tenant id,
# so it never mixes with a tenant's log.
PLATFORM = "_platform"


def envelope(
    record_name: str, tenant: str, actor: str, occurred_at: int | None = None
) -> dict[str, Any]:
    """An event envelope for a fact about a principal (no command caused it); ``occurred_at``
    in ms, now unless given (a count of refusals is dated by the last one)."""
    event_id = str(uuid.uuid4())
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {
        "event_id": event_id,
        "event_type": record_name,
        "command_id": "",
        "correlation_id": event_id,
        "causation_id": event_id,
        "tenant_id": tenant,
        "aggregate_type": "principal",
        "aggregate_id": actor,
        "aggregate_version": 0,
        "occurred_at": int(time.time() * 1000) if occurred_at is None else occurred_at,
        "actor": actor,
        "traceparent": carrier.get("traceparent"),
        "tracestate": carrier.get("tracestate"),
        "command_outcome": False,
    }


async def record(
    state: ApiState,
    record_name: str,
    tenant: str,
    actor: str,
    payload: dict[str, Any],
    occurred_at: int | None = None,
) -> Delivered:
    """Encode and produce one audit event; returns its position once the broker has it."""
    value = {"envelope": envelope(record_name, tenant, actor, occurred_at), **payload}
    data = state.codec.encode(AUDIT, record_name, value)
    return await state.producer.send(
        AUDIT, tenant.encode(), data, {"aion-type": record_name.encode()}
    )


def _tenant(principal: Principal) -> str:
    return principal.tenant or PLATFORM


async def signed_in(
    state: ApiState, principal: Principal, method: str, session_id: str | None
) -> None:
    """``method``: "oidc" or "api_key"."""
    await record(
        state,
        SIGNED_IN,
        _tenant(principal),
        principal.subject,
        {
            "method": method,
            "subject": principal.subject,
            "roles": sorted(principal.roles),
            "session_id": session_id,
            "token_id": principal.key_id,
        },
    )


async def signed_out(state: ApiState, principal: Principal, session_id: str | None) -> None:
    await record(
        state,
        SIGNED_OUT,
        _tenant(principal),
        principal.subject,
        {"subject": principal.subject, "session_id": session_id},
    )


async def access_denied(
    state: ApiState,
    principal: Principal,
    tenant_id: str,
    action: str,
    method: str,
    path: str,
    reason: str,
    status: int,
    *,
    count: int = 1,
    first_ms: int | None = None,
    last_ms: int | None = None,
) -> None:
    """Recorded under ``tenant_id``, the tenant the request addressed, whatever the caller's
    own tenant is (another tenant's attempt is this tenant's concern); an empty one (a
    platform route) under ``_platform``. ``count`` refusals between ``first_ms`` and
    ``last_ms`` (api/denials.py counts them; the other fields are the last one's)."""
    await record(
        state,
        ACCESS_DENIED,
        tenant_id or PLATFORM,
        principal.subject,
        {
            "subject": principal.subject,
            "via": principal.via,
            "roles": sorted(principal.roles),
            "method": method,
            "path": path,
            "action": action,
            "reason": reason,
            "status": status,
            "count": count,
            "first_at": first_ms,
            "last_at": last_ms,
        },
        occurred_at=last_ms,
    )
