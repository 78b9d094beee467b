"""The Policy aggregate: one Cedar policy of a tenant. Pure, no I/O.

Aggregate id: ``scoped_id(tenant_id, policy_id)``. The Cedar text is only checked for being
non-blank here; the stream processor validates it against the Cedar schema afterwards.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cedarpy

from commands.aggregate import Aggregate
from commands.enforcement import RESERVED_PREFIXES
from commands.model import Command, Context, Decision, Event, Rejection, scoped_id

NAME = AGGREGATE = "policy"

PUT = "aion.policy.PutPolicy"
PUT_DONE = "aion.policy.PolicyPut"
DELETE = "aion.policy.DeletePolicy"
DELETED = "aion.policy.PolicyDeleted"

COMMANDS = frozenset({PUT, DELETE})
EVENTS = frozenset({PUT_DONE, DELETED})

POLICY_ID = re.compile(r"[a-z0-9-]{1,63}")


@dataclass(frozen=True)
class PolicyState:
    version: int = 0
    status: str = "absent"  # absent -> active <-> deleted
    tenant_id: str | None = None
    policy_id: str | None = None
    cedar: str = ""
    description: str = ""


def aggregate_id(tenant_id: str, policy_id: str) -> str:
    return scoped_id(tenant_id, policy_id)


def check_policy_id(policy_id: Any) -> Rejection | None:
    if not isinstance(policy_id, str) or not POLICY_ID.fullmatch(policy_id):
        return Rejection(
            "invalid",
            "policy_id must be 1-63 characters of lower-case letters, digits and '-'",
            "/policy_id",
        )
    return None


def check_reserved(policy_id: str) -> Rejection | None:
    """A tenant's policy id may not be in the platform's namespace (issue 17, finding 9)."""
    if policy_id.startswith(RESERVED_PREFIXES):
        return Rejection(
            "invalid",
            f"policy_id must not start with {' or '.join(map(repr, RESERVED_PREFIXES))}: "
            "those names are reserved for the platform's policies",
            "/policy_id",
        )
    return None


def check_policy_name(payload: dict[str, Any]) -> Rejection | None:
    """A PutPolicy's name alone: the API refuses a reserved one before producing (the Cedar
    text is the decider's to validate)."""
    return check_policy_id(payload.get("policy_id")) or check_reserved(
        str(payload.get("policy_id"))
    )


def _schema() -> str:
    """Our entity types and actions, with the API's actions (generated from its routes by
    `aion docs cedar`), so that a tenant policy may restrict API calls too."""
    here = Path(__file__).parent
    schema = json.loads((here / "cedar_schema.json").read_text())
    api_actions = json.loads((here / "cedar_api_actions.json").read_text())
    schema[""]["entityTypes"].setdefault("Platform", {})
    schema[""]["actions"].update(api_actions)
    return json.dumps(schema)


CEDAR_SCHEMA = _schema()


def check_cedar(text: str) -> Rejection | None:
    """Cedar's own validator against our entity types and actions (a pure computation)."""
    result = cedarpy.validate_policies(text, CEDAR_SCHEMA)
    if result.validation_passed:
        return None
    messages = "; ".join(error.error for error in result.errors)
    return Rejection("invalid", f"invalid Cedar: {messages}", "/cedar")


def check_put(payload: dict[str, Any]) -> Rejection | None:
    """Rules on a PutPolicy's own fields; the API may run them before producing."""
    invalid = check_policy_id(payload.get("policy_id"))
    if invalid:
        return invalid
    reserved = check_reserved(str(payload["policy_id"]))
    if reserved:
        return reserved
    cedar = payload.get("cedar")
    if not isinstance(cedar, str) or not cedar.strip():
        return Rejection("invalid", "cedar must not be blank", "/cedar")
    invalid_cedar = check_cedar(cedar)
    if invalid_cedar:
        return invalid_cedar
    if not isinstance(payload.get("description", ""), str):
        return Rejection("invalid", "description must be a string", "/description")
    return None


def summary(state: PolicyState) -> dict[str, Any]:
    """What other aggregates' deciders see of a policy."""
    return {"status": state.status, "version": state.version}


def _wrong_aggregate(command: Command, policy_id: str) -> Rejection | None:
    key = command.addressed_elsewhere(policy_id)
    if key is not None:
        return Rejection(
            "invalid", f"policy_id does not match the aggregate id {key}", "/policy_id"
        )
    return None


def decide(state: PolicyState, command: Command, context: Context) -> Decision:
    p = command.payload
    tenant_id = str(command.envelope["tenant_id"])
    if command.type == PUT:
        invalid = check_put(p) or _wrong_aggregate(command, p["policy_id"])
        if invalid:
            return invalid
        return [
            Event(
                PUT_DONE,
                {
                    "tenant_id": tenant_id,
                    "policy_id": p["policy_id"],
                    "cedar": p["cedar"],
                    "description": p.get("description") or "",
                    "policy_version": state.version + 1,
                },
            )
        ]
    if command.type == DELETE:
        invalid = check_policy_id(p.get("policy_id")) or _wrong_aggregate(command, p["policy_id"])
        if invalid:
            return invalid
        if state.status != "active":
            return Rejection("not_found", f"policy {p['policy_id']} does not exist", "/policy_id")
        return [Event(DELETED, {"tenant_id": tenant_id, "policy_id": p["policy_id"]})]
    return Rejection("unsupported", f"the policy aggregate does not handle {command.type}")


def evolve(state: PolicyState, event: Event) -> PolicyState:
    p = event.payload
    if event.type == PUT_DONE:
        return replace(
            state,
            version=state.version + 1,
            status="active",
            tenant_id=p["tenant_id"],
            policy_id=p["policy_id"],
            cedar=p["cedar"],
            description=p.get("description") or "",
        )
    if event.type == DELETED:
        return replace(state, version=state.version + 1, status="deleted")
    return state


aggregate = Aggregate(
    AGGREGATE,
    COMMANDS,
    PolicyState,
    decide,
    evolve,
    summary=summary,
    tenant_scoped=True,
)
