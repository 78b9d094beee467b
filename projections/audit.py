"""The audit log: who did what, one row per event of every events topic and of `aion.audit`.

The log is the event log itself, classified: a command's events (its rejection included), a
policy change, a policy engine's verdict, and the security facts only the API sees (sign-in,
sign-out, refused requests counted per caller, tenant and action, on `aion.audit`). A row is
keyed by its event's Kafka position, so applying an event again (a redelivery, a replay)
changes nothing; part of the core projection, so it commits with the core's checkpoint
(decision 33).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from projections.bulk import BatchPart, insert_new
from projections.runner import Delivered, Position
from schemas.topics import AUDIT, TOPICS

SIGNED_IN = "aion.audit.SignedIn"
SIGNED_OUT = "aion.audit.SignedOut"
ACCESS_DENIED = "aion.audit.AccessDenied"
COMMAND_REJECTED = "aion.CommandRejected"
POLICY_CHANGES = frozenset({"aion.policy.PolicyPut", "aion.policy.PolicyDeleted"})
ENFORCEMENT = "aion.enforcement.EnforcementDecided"

KINDS = ("login", "logout", "command", "policy_change", "denial", "enforcement")
OUTCOMES = ("ok", "rejected", "allow", "deny", "denied")
DETAIL_TEXT_MAX = 500  # characters of one string in `detail`: an audit row stays small


@dataclass(frozen=True)
class AuditEntry:
    """What an event says for the audit log (the envelope supplies who, when and the tenant)."""

    kind: str
    action: str
    outcome: str
    target: str | None
    detail: dict[str, Any] = field(default_factory=dict)


def short(name: str) -> str:
    """``aion.policy.PolicyPut`` -> ``PolicyPut``."""
    return name.rsplit(".", 1)[-1]


def _small(value: Any) -> Any:
    if isinstance(value, str) and len(value) > DETAIL_TEXT_MAX:
        return value[:DETAIL_TEXT_MAX] + "…"
    if isinstance(value, list):
        return [_small(v) for v in value[:20]]
    return value


def _pick(value: dict[str, Any], *names: str) -> dict[str, Any]:
    """The named fields that the event has and are set, kept small. (A loop: this runs for
    every event of a rebuild, and a comprehension's frame cost more than its work.)"""
    picked = {}
    for name in names:
        found = value.get(name)
        if found is not None and found != "" and found != []:
            picked[name] = _small(found)
    return picked


def target_of(envelope: dict[str, Any]) -> str:
    """``<aggregate type>/<local id>``: the tenant prefix of the aggregate id is dropped (the
    row is the tenant's already)."""
    tenant, local = envelope["tenant_id"], envelope["aggregate_id"]
    if local != tenant:
        local = local.removeprefix(f"{tenant}/")
    return f"{envelope['aggregate_type']}/{local}"


def classify(record_name: str, value: dict[str, Any]) -> AuditEntry:
    """The audit entry of one decoded event. Pure, so that every kind is unit-tested."""
    env = value["envelope"]
    if record_name == SIGNED_IN:
        detail = _pick(value, "method", "roles", "session_id", "token_id")
        return AuditEntry("login", short(record_name), "ok", None, detail)
    if record_name == SIGNED_OUT:
        return AuditEntry("logout", short(record_name), "ok", None, _pick(value, "session_id"))
    if record_name == ACCESS_DENIED:
        detail = _pick(value, "method", "path", "action", "reason", "status", "via", "roles")
        # How many refusals the entry stands for (api/denials.py counts them): 1 before then.
        detail["count"] = value.get("count") or 1
        detail.update(_pick(value, "first_at", "last_at"))
        return AuditEntry("denial", short(record_name), "denied", value.get("path"), detail)
    if record_name in POLICY_CHANGES:
        detail = _pick(value, "policy_id", "policy_version")
        return AuditEntry("policy_change", short(record_name), "ok", target_of(env), detail)
    if record_name == ENFORCEMENT:
        tenant = env["tenant_id"]
        subject = str(value.get("subject_id", "")).removeprefix(f"{tenant}/")
        detail = _pick(value, "enforcement_id", "action", "policy_ids")
        target = f"{value.get('subject_type')}/{subject}"
        outcome = "allow" if value.get("decision") == "allow" else "deny"
        return AuditEntry("enforcement", short(record_name), outcome, target, detail)
    if record_name == COMMAND_REJECTED:
        # The refused command is what the actor tried: more telling than "CommandRejected".
        detail = _pick(value, "code", "reason", "field")
        action = short(value.get("command_type") or record_name)
        return AuditEntry("command", action, "rejected", target_of(env), detail)
    if record_name.endswith("Rejected"):  # a policy's denial: AgentDeploymentRejected, ...
        detail = _pick(value, "reason", "field")
        return AuditEntry("command", short(record_name), "rejected", target_of(env), detail)
    return AuditEntry("command", short(record_name), "ok", target_of(env), _pick(value, "reason"))


class AuditProjection(BatchPart):
    name = "audit"
    topics: tuple[str, ...] = (
        *(t.name for t in TOPICS if t.name.startswith("aion.events.")),
        AUDIT,
    )

    def steps(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> Iterator[None]:
        yield  # nothing to load
        insert_new(cur, "audit_log", [row(name, value, at) for name, value, at in batch])


def row(record_name: str, value: dict[str, Any], at: Position) -> dict[str, Any]:
    """The audit_log row of one event, keyed by its position. (NUL in its text becomes U+FFFD
    where rows are written, projections/bulk.py.)"""
    env = value["envelope"]
    entry = classify(record_name, value)
    return {
        "topic": at.topic,
        "partition": at.partition,
        "offset": at.offset,
        "tenant_id": env["tenant_id"],
        "occurred_at": env["occurred_at"],
        "actor": env["actor"],
        "kind": entry.kind,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "command_id": env["command_id"] or None,
        "event_id": env["event_id"],
        "detail": entry.detail,
    }
