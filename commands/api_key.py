"""The ApiKey aggregate: a tenant's credential for programs. Pure, no I/O.

Aggregate id: ``scoped_id(tenant_id, key_id)``. The secret never reaches this model: the API
generates it, shows it once, and sends only its SHA-256; the read model the API checks keys
against is projected from these events.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from commands.aggregate import Aggregate
from commands.model import Command, Context, Decision, Event, Rejection
from commands.tenant import check_roles

NAME = AGGREGATE = "api_key"

CREATE = "aion.api_key.CreateApiKey"
CREATED = "aion.api_key.ApiKeyCreated"
REVOKE = "aion.api_key.RevokeApiKey"
REVOKED = "aion.api_key.ApiKeyRevoked"

COMMANDS = frozenset({CREATE, REVOKE})
EVENTS = frozenset({CREATED, REVOKED})

KEY_ID = re.compile(r"[0-9a-f]{16}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_RATE = 10_000.0
MAX_BURST = 100_000


@dataclass(frozen=True)
class ApiKeyState:
    version: int = 0
    status: str = "absent"  # absent -> active -> revoked
    key_id: str | None = None
    name: str = ""
    roles: list[str] = field(default_factory=list)


def check_key_id(key_id: Any) -> Rejection | None:
    if not isinstance(key_id, str) or not KEY_ID.fullmatch(key_id):
        return Rejection("invalid", "key_id must be 16 lower-case hex characters", "/key_id")
    return None


def check_create(p: dict[str, Any]) -> Rejection | None:
    """Rules on a CreateApiKey's own fields; the API runs them too, before producing."""
    invalid = check_key_id(p.get("key_id"))
    if invalid:
        return invalid
    name = p.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        return Rejection("invalid", "name must be 1-100 characters", "/name")
    invalid = check_roles(p.get("roles"))
    if invalid:
        return invalid
    if not isinstance(p.get("secret_sha256"), str) or not SHA256_HEX.fullmatch(p["secret_sha256"]):
        return Rejection("invalid", "secret_sha256 must be 64 hex characters", "/secret_sha256")
    rate = p.get("rate_per_s")
    if rate is not None and (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not math.isfinite(rate)
        or not 0 < rate <= MAX_RATE
    ):
        return Rejection(
            "invalid", f"rate_per_s must be above 0 and at most {MAX_RATE:g}", "/rate_per_s"
        )
    burst = p.get("burst")
    if burst is not None and (
        isinstance(burst, bool) or not isinstance(burst, int) or not 0 < burst <= MAX_BURST
    ):
        return Rejection("invalid", f"burst must be an integer from 1 to {MAX_BURST}", "/burst")
    return None


def _wrong_aggregate(command: Command, key_id: str) -> Rejection | None:
    key = command.addressed_elsewhere(key_id)
    if key is not None:
        return Rejection("invalid", f"key_id does not match the aggregate id {key}", "/key_id")
    return None


def decide(state: ApiKeyState, command: Command, context: Context) -> Decision:
    p = command.payload
    tenant_id = str(command.envelope["tenant_id"])
    if command.type == CREATE:
        invalid = check_create(p) or _wrong_aggregate(command, p["key_id"])
        if invalid:
            return invalid
        if state.status != "absent":
            return Rejection("already_exists", f"API key {p['key_id']} already exists", "/key_id")
        return [
            Event(
                CREATED,
                {
                    "tenant_id": tenant_id,
                    "key_id": p["key_id"],
                    "name": p["name"].strip(),
                    "roles": list(p["roles"]),
                    "secret_sha256": p["secret_sha256"],
                    "rate_per_s": p.get("rate_per_s"),
                    "burst": p.get("burst"),
                    "expires_at": p.get("expires_at"),
                },
            )
        ]
    if command.type == REVOKE:
        invalid = check_key_id(p.get("key_id")) or _wrong_aggregate(command, p["key_id"])
        if invalid:
            return invalid
        if state.status == "absent":
            return Rejection("not_found", f"API key {p['key_id']} does not exist", "/key_id")
        if state.status == "revoked":
            return Rejection("conflict", f"API key {p['key_id']} is already revoked", "/key_id")
        reason = p.get("reason") or ""
        return [Event(REVOKED, {"tenant_id": tenant_id, "key_id": p["key_id"], "reason": reason})]
    return Rejection("unsupported", f"the api_key aggregate does not handle {command.type}")


def evolve(state: ApiKeyState, event: Event) -> ApiKeyState:
    p = event.payload
    if event.type == CREATED:
        return replace(
            state,
            version=state.version + 1,
            status="active",
            key_id=p["key_id"],
            name=p["name"],
            roles=list(p["roles"]),
        )
    if event.type == REVOKED:
        return replace(state, version=state.version + 1, status="revoked")
    return state


aggregate = Aggregate(AGGREGATE, COMMANDS, ApiKeyState, decide, evolve, tenant_scoped=True)
