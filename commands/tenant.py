"""The Tenant aggregate: the unit of isolation. Pure decide/evolve, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from commands.model import Command, Decision, Event, Rejection

AGGREGATE = "tenant"
CREATE = "aion.tenant.CreateTenant"
CREATED = "aion.tenant.TenantCreated"

TENANT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")


@dataclass(frozen=True)
class TenantState:
    version: int = 0
    tenant_id: str | None = None
    display_name: str = ""
    status: str = "absent"  # absent -> active (suspension arrives with the write-side issue)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.status != "absent"


def check_create(payload: dict[str, Any]) -> Rejection | None:
    """Rules on a CreateTenant's own fields; the API runs them too, before producing."""
    tenant_id = payload.get("tenant_id", "")
    if not isinstance(tenant_id, str) or not TENANT_ID.fullmatch(tenant_id):
        return Rejection(
            "invalid",
            "tenant_id must be 3-63 characters of lower-case letters, digits and dashes, "
            "starting and ending with a letter or digit",
            "/tenant_id",
        )
    if not payload.get("display_name", "").strip():
        return Rejection("invalid", "display_name must not be blank", "/display_name")
    return None


def decide(state: TenantState, command: Command) -> Decision:
    if command.type != CREATE:
        return Rejection("unsupported", f"the tenant aggregate does not handle {command.type}")
    invalid = check_create(command.payload)
    if invalid:
        return invalid
    if state.exists:
        return Rejection("already_exists", f"tenant {state.tenant_id} already exists", "/tenant_id")
    p = command.payload
    return [
        Event(
            CREATED,
            {
                "tenant_id": p["tenant_id"],
                "display_name": p["display_name"].strip(),
                "labels": dict(p.get("labels") or {}),
            },
        )
    ]


def evolve(state: TenantState, event: Event) -> TenantState:
    if event.type == CREATED:
        p = event.payload
        return replace(
            state,
            version=state.version + 1,
            tenant_id=p["tenant_id"],
            display_name=p["display_name"],
            labels=dict(p["labels"]),
            status="active",
        )
    return state
