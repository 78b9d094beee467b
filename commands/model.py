"""The write model's vocabulary: commands in, events or a rejection out. No I/O here."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Fixed namespace for event ids: uuid5(namespace, f"{command_id}/{index}") is stable across
# retries, so a command processed twice yields byte-identical event ids.
EVENT_ID_NAMESPACE = uuid.UUID("6f1d7c1e-5b9a-4f0e-9c55-2f8f5a3c9e10")


@dataclass(frozen=True)
class Command:
    type: str  # full Avro record name, e.g. aion.tenant.CreateTenant
    envelope: dict[str, Any]
    payload: dict[str, Any]

    @property
    def command_id(self) -> str:
        return str(self.envelope["command_id"])

    def addressed_elsewhere(self, local_id: str) -> str | None:
        """The aggregate id the command is keyed to, when the payload names another entity of
        its tenant (the partition key and the payload must agree), else None."""
        addressed = self.envelope.get("aggregate_id")
        if addressed is None or addressed == scoped_id(str(self.envelope["tenant_id"]), local_id):
            return None
        return str(addressed)

    @property
    def expected_version(self) -> int | None:
        value = self.envelope.get("expected_version")
        return None if value is None else int(value)


@dataclass(frozen=True)
class Event:
    type: str  # full Avro record name, e.g. aion.tenant.TenantCreated
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    code: str  # already_exists, not_found, version_conflict, invalid, suspended, ...
    reason: str
    field: str | None = None  # JSON pointer into the request body

    @property
    def type(self) -> str:
        return "aion.CommandRejected"


Decision = list[Event] | Rejection

# (aggregate type, aggregate id) -> that aggregate's published summary, or None if unknown.
Lookup = Callable[[str, str], Mapping[str, Any] | None]


def _nothing(aggregate_type: str, aggregate_id: str) -> None:
    return None


@dataclass(frozen=True)
class Context:
    """What a decider may know beyond its own aggregate.

    ``lookup`` reads a directory of other aggregates' summaries (each aggregate publishes one
    after every change). It is eventually consistent: a decider may see a summary a few
    milliseconds old, never a future one.
    """

    now_ms: int = 0
    lookup: Lookup = _nothing

    def find(self, aggregate_type: str, aggregate_id: str) -> Mapping[str, Any] | None:
        return self.lookup(aggregate_type, aggregate_id)


def scoped_id(tenant_id: str, local_id: str) -> str:
    """The aggregate id of a tenant-scoped aggregate (agent, model, policy, task)."""
    return f"{tenant_id}/{local_id}"


def event_id(command_id: str, index: int) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{command_id}/{index}"))
