"""The Model aggregate: a model in a tenant's catalog, for agents to reference. Pure, no I/O.

Aggregate id: ``scoped_id(tenant_id, model_name)``, so one model name is one aggregate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from commands.aggregate import Aggregate
from commands.model import Command, Context, Decision, Event, Rejection, scoped_id

NAME = AGGREGATE = "model"

REGISTER = "aion.model.RegisterModel"
REGISTERED = "aion.model.ModelRegistered"

COMMANDS = frozenset({REGISTER})
EVENTS = frozenset({REGISTERED})

MODEL_NAME = re.compile(r"[a-z0-9._-]{1,63}")
KINDS = ("chat", "embedding", "completion", "other")  # the Avro enum aion.model.ModelKind


@dataclass(frozen=True)
class ModelState:
    version: int = 0
    status: str = "absent"  # absent -> registered
    tenant_id: str | None = None
    model_name: str | None = None
    provider: str = ""
    kind: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    description: str = ""


def aggregate_id(tenant_id: str, model_name: str) -> str:
    return scoped_id(tenant_id, model_name)


def check_register(payload: dict[str, Any]) -> Rejection | None:
    """Rules on a RegisterModel's own fields; the API may run them before producing."""
    name = payload.get("model_name")
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        return Rejection(
            "invalid",
            "model_name must be 1-63 characters of lower-case letters, digits, '.', '_' and '-'",
            "/model_name",
        )
    provider = payload.get("provider")
    if not isinstance(provider, str) or not provider.strip():
        return Rejection("invalid", "provider must not be blank", "/provider")
    if payload.get("kind") not in KINDS:
        return Rejection("invalid", f"kind must be one of {', '.join(KINDS)}", "/kind")
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        return Rejection("invalid", "parameters must be an object of strings", "/parameters")
    for key, value in parameters.items():
        if not isinstance(value, str):
            return Rejection("invalid", "parameter values must be strings", f"/parameters/{key}")
    if not isinstance(payload.get("description", ""), str):
        return Rejection("invalid", "description must be a string", "/description")
    return None


def summary(state: ModelState) -> dict[str, Any]:
    """What other aggregates' deciders (e.g. an agent's) see of a model."""
    return {"status": state.status, "version": state.version, "kind": state.kind}


def decide(state: ModelState, command: Command, context: Context) -> Decision:
    if command.type != REGISTER:
        return Rejection("unsupported", f"the model aggregate does not handle {command.type}")
    p = command.payload
    invalid = check_register(p)
    if invalid:
        return invalid
    tenant_id = str(command.envelope["tenant_id"])
    key = command.addressed_elsewhere(p["model_name"])
    if key is not None:
        return Rejection(
            "invalid", f"model_name does not match the aggregate id {key}", "/model_name"
        )
    if state.status != "absent":
        return Rejection(
            "already_exists", f"model {state.model_name} is already registered", "/model_name"
        )
    return [
        Event(
            REGISTERED,
            {
                "tenant_id": tenant_id,
                "model_name": p["model_name"],
                "provider": p["provider"].strip(),
                "kind": p["kind"],
                "parameters": dict(p.get("parameters") or {}),
                "description": p.get("description") or "",
            },
        )
    ]


def evolve(state: ModelState, event: Event) -> ModelState:
    if event.type == REGISTERED:
        p = event.payload
        return replace(
            state,
            version=state.version + 1,
            status="registered",
            tenant_id=p["tenant_id"],
            model_name=p["model_name"],
            provider=p["provider"],
            kind=p["kind"],
            parameters=dict(p.get("parameters") or {}),
            description=p.get("description") or "",
        )
    return state


aggregate = Aggregate(
    AGGREGATE,
    COMMANDS,
    ModelState,
    decide,
    evolve,
    summary=summary,
    tenant_scoped=True,
)
