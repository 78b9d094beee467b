"""The Tenant aggregate: the unit of isolation, its limits and its users. Pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from commands.aggregate import Aggregate
from commands.model import Command, Context, Decision, Event, Rejection

NAME = AGGREGATE = "tenant"

CREATE = "aion.tenant.CreateTenant"
CREATED = "aion.tenant.TenantCreated"
SUSPEND = "aion.tenant.SuspendTenant"
SUSPENDED = "aion.tenant.TenantSuspended"
REINSTATE = "aion.tenant.ReinstateTenant"
REINSTATED = "aion.tenant.TenantReinstated"
ADD_USER = "aion.tenant.AddUser"
USER_ADDED = "aion.tenant.UserAdded"
ASSIGN_ROLE = "aion.tenant.AssignRole"
ROLES_ASSIGNED = "aion.tenant.RolesAssigned"
REMOVE_USER = "aion.tenant.RemoveUser"
USER_REMOVED = "aion.tenant.UserRemoved"

COMMANDS = frozenset({CREATE, SUSPEND, REINSTATE, ADD_USER, ASSIGN_ROLE, REMOVE_USER})
EVENTS = frozenset({CREATED, SUSPENDED, REINSTATED, USER_ADDED, ROLES_ASSIGNED, USER_REMOVED})

TENANT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")
USER_ID = re.compile(r"[^\s/]{1,255}")  # an IdP subject, usable as a path segment

ADMIN = "admin"
ROLES = ("admin", "operator", "developer", "viewer")  # the Avro enum aion.tenant.Role

INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1
# aion.tenant.TenantLimits: field -> (default, largest value its Avro type holds)
LIMITS: dict[str, tuple[int, int]] = {
    "max_concurrent_tasks": (10, INT_MAX),
    "tasks_per_minute": (600, INT_MAX),
    "max_fuel": (10_000_000_000, LONG_MAX),
    "max_memory_mb": (256, INT_MAX),
    "max_timeout_ms": (60_000, INT_MAX),
    "max_module_bytes": (10_485_760, LONG_MAX),
}


def default_limits() -> dict[str, int]:
    return {name: default for name, (default, _) in LIMITS.items()}


@dataclass(frozen=True)
class TenantState:
    version: int = 0
    tenant_id: str | None = None
    display_name: str = ""
    status: str = "absent"  # absent -> active <-> suspended
    labels: dict[str, str] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=default_limits)
    # user_id -> {"display_name": str, "roles": [role, ...]}
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    suspension_reason: str | None = None

    @property
    def exists(self) -> bool:
        return self.status != "absent"

    def admins(self) -> list[str]:
        return [u for u, user in self.users.items() if ADMIN in user["roles"]]


# --- rules on a command's own fields (no state) ----------------------------------------------


def check_limits(limits: Any) -> Rejection | None:
    if not isinstance(limits, dict):
        return Rejection("invalid", "limits must be an object", "/limits")
    for name, value in limits.items():
        if name not in LIMITS:
            return Rejection("invalid", f"unknown limit {name}", f"/limits/{name}")
        high = LIMITS[name][1]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= high:
            return Rejection(
                "invalid", f"{name} must be an integer from 1 to {high}", f"/limits/{name}"
            )
    return None


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
    if payload.get("limits") is not None:
        return check_limits(payload["limits"])
    return None


def check_roles(roles: Any) -> Rejection | None:
    """Roles: a non-empty list of known roles, each at most once."""
    if not isinstance(roles, list) or not roles:
        return Rejection("invalid", "roles must name at least one role", "/roles")
    seen: set[str] = set()
    for index, role in enumerate(roles):
        if role not in ROLES:
            return Rejection(
                "invalid", f"role must be one of {', '.join(ROLES)}", f"/roles/{index}"
            )
        if role in seen:
            return Rejection("invalid", f"role {role} is listed twice", f"/roles/{index}")
        seen.add(role)
    return None


def check_user_id(user_id: Any) -> Rejection | None:
    if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
        return Rejection(
            "invalid", "user_id must be 1-255 characters without whitespace or '/'", "/user_id"
        )
    return None


# --- decide ----------------------------------------------------------------------------------


# Limits of a tenant created before limits existed (v1): it was never limited, and stays so.
# The same rule upcasts v1 TenantCreated events (schemas/upcasting.py) for every reader.
UNLIMITED = {
    "max_concurrent_tasks": 2**31 - 1,
    "tasks_per_minute": 2**31 - 1,
    "max_fuel": 2**63 - 1,
    "max_memory_mb": 2**31 - 1,
    "max_timeout_ms": 2**31 - 1,
    "max_module_bytes": 2**63 - 1,
}


def upgrade_state(document: dict[str, Any]) -> dict[str, Any]:
    """A state stored before v2 has no limits: it is a v1 tenant, so unlimited."""
    if document.get("status", "absent") != "absent" and "limits" not in document:
        return {**document, "limits": dict(UNLIMITED)}
    return document


def summary(state: TenantState) -> dict[str, Any]:
    """What other aggregates' deciders see of a tenant (through Context.find)."""
    return {
        "status": state.status,
        "version": state.version,
        "limits": dict(state.limits),
        "users": {user_id: list(user["roles"]) for user_id, user in state.users.items()},
    }


def decide(state: TenantState, command: Command, context: Context) -> Decision:
    handler = _HANDLERS.get(command.type)
    if handler is None:
        return Rejection("unsupported", f"the tenant aggregate does not handle {command.type}")
    if command.type != CREATE and not state.exists:
        return Rejection("not_found", "the tenant does not exist", "tenant_id")
    if state.status == "suspended" and command.type not in (SUSPEND, REINSTATE):
        return Rejection("suspended", f"tenant {state.tenant_id} is suspended", "tenant_id")
    return handler(state, command.payload)


def _create(state: TenantState, p: dict[str, Any]) -> Decision:
    invalid = check_create(p)
    if invalid:
        return invalid
    if state.exists:
        return Rejection("already_exists", f"tenant {state.tenant_id} already exists", "/tenant_id")
    return [
        Event(
            CREATED,
            {
                "tenant_id": p["tenant_id"],
                "display_name": p["display_name"].strip(),
                "labels": dict(p.get("labels") or {}),
                "limits": {**default_limits(), **(p.get("limits") or {})},
            },
        )
    ]


def _suspend(state: TenantState, p: dict[str, Any]) -> Decision:
    if state.status == "suspended":
        return Rejection("conflict", f"tenant {state.tenant_id} is already suspended", "tenant_id")
    reason = p.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        return Rejection("invalid", "reason must not be blank", "/reason")
    return [Event(SUSPENDED, {"tenant_id": state.tenant_id, "reason": reason.strip()})]


def _reinstate(state: TenantState, p: dict[str, Any]) -> Decision:
    if state.status != "suspended":
        return Rejection("conflict", f"tenant {state.tenant_id} is not suspended", "tenant_id")
    return [Event(REINSTATED, {"tenant_id": state.tenant_id})]


def _add_user(state: TenantState, p: dict[str, Any]) -> Decision:
    user_id = p.get("user_id")
    invalid = check_user_id(user_id)
    if invalid:
        return invalid
    display_name = p.get("display_name")
    if not isinstance(display_name, str) or not display_name.strip():
        return Rejection("invalid", "display_name must not be blank", "/display_name")
    invalid = check_roles(p.get("roles"))
    if invalid:
        return invalid
    if user_id in state.users:
        return Rejection("already_exists", f"user {user_id} already exists", "/user_id")
    return [
        Event(
            USER_ADDED,
            {
                "tenant_id": state.tenant_id,
                "user_id": user_id,
                "display_name": display_name.strip(),
                "roles": list(p["roles"]),
            },
        )
    ]


def _known_user(state: TenantState, user_id: Any) -> Rejection | None:
    if not isinstance(user_id, str) or user_id not in state.users:
        return Rejection("not_found", f"user {user_id} is not in the tenant", "/user_id")
    return None


def _is_last_admin(state: TenantState, user_id: str) -> bool:
    return state.admins() == [user_id]


def _assign_role(state: TenantState, p: dict[str, Any]) -> Decision:
    user_id = p.get("user_id")
    invalid = check_roles(p.get("roles"))
    if invalid:
        return invalid
    unknown = _known_user(state, user_id)
    if unknown:
        return unknown
    assert isinstance(user_id, str)
    if ADMIN not in p["roles"] and _is_last_admin(state, user_id):
        return Rejection(
            "conflict", f"user {user_id} is the tenant's last admin and must stay one", "/roles"
        )
    return [
        Event(
            ROLES_ASSIGNED,
            {"tenant_id": state.tenant_id, "user_id": user_id, "roles": list(p["roles"])},
        )
    ]


def _remove_user(state: TenantState, p: dict[str, Any]) -> Decision:
    user_id = p.get("user_id")
    unknown = _known_user(state, user_id)
    if unknown:
        return unknown
    assert isinstance(user_id, str)
    if _is_last_admin(state, user_id):
        return Rejection(
            "conflict", f"user {user_id} is the tenant's last admin and cannot leave", "/user_id"
        )
    if list(state.users) == [user_id]:
        # A tenant that records members accepts only them (api.membership); emptied, it would
        # fall back to the identity provider's word, and a removed user would be back in.
        return Rejection(
            "conflict", f"user {user_id} is the tenant's last member and cannot leave", "/user_id"
        )
    return [Event(USER_REMOVED, {"tenant_id": state.tenant_id, "user_id": user_id})]


_HANDLERS: dict[str, Callable[[TenantState, dict[str, Any]], Decision]] = {
    CREATE: _create,
    SUSPEND: _suspend,
    REINSTATE: _reinstate,
    ADD_USER: _add_user,
    ASSIGN_ROLE: _assign_role,
    REMOVE_USER: _remove_user,
}


# --- evolve ----------------------------------------------------------------------------------


def evolve(state: TenantState, event: Event) -> TenantState:
    p = event.payload
    if event.type == CREATED:
        return replace(
            state,
            version=state.version + 1,
            tenant_id=p["tenant_id"],
            display_name=p["display_name"],
            labels=dict(p.get("labels") or {}),
            # Events written before limits existed carry none: the Avro default applies.
            limits={**default_limits(), **(p.get("limits") or {})},
            status="active",
        )
    if event.type == SUSPENDED:
        return replace(
            state, version=state.version + 1, status="suspended", suspension_reason=p["reason"]
        )
    if event.type == REINSTATED:
        return replace(state, version=state.version + 1, status="active", suspension_reason=None)
    if event.type in (USER_ADDED, ROLES_ASSIGNED):
        users = dict(state.users)
        previous = users.get(p["user_id"], {})
        users[p["user_id"]] = {
            "display_name": p.get("display_name", previous.get("display_name", "")),
            "roles": list(p["roles"]),
        }
        return replace(state, version=state.version + 1, users=users)
    if event.type == USER_REMOVED:
        users = {u: user for u, user in state.users.items() if u != p["user_id"]}
        return replace(state, version=state.version + 1, users=users)
    return state


aggregate = Aggregate(
    AGGREGATE,
    COMMANDS,
    TenantState,
    decide,
    evolve,
    summary=summary,
    tenant_scoped=False,
    upgrade=upgrade_state,
)
