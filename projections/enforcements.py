"""The enforcements read model: every Cedar verdict, with the policies that decided it.

An enforcement is written once (each EnforcementDecided is its own aggregate at version 1):
the enforcement id is the key, so a duplicate insert does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from commands.agent import strict_json
from commands.enforcement import DECIDED
from projections.bulk import BatchPart, insert_new
from projections.runner import Delivered
from schemas.topics import events_topic


class EnforcementsProjection(BatchPart):
    name = "enforcements"
    topics: tuple[str, ...] = (events_topic("enforcement"),)

    def steps(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> Iterator[None]:
        yield  # nothing to load
        rows = [
            row(value)
            for name, value, _ in batch
            if name == DECIDED and value["envelope"]["aggregate_type"] == "enforcement"
        ]
        insert_new(cur, "enforcements", rows)


def row(value: dict[str, Any]) -> dict[str, Any]:
    env = value["envelope"]
    tenant = env["tenant_id"]
    return {
        "tenant_id": tenant,
        "enforcement_id": value["enforcement_id"],
        "subject_type": value["subject_type"],
        "subject_id": value["subject_id"].removeprefix(f"{tenant}/"),
        "action": value["action"],
        "decision": value["decision"],
        "policy_ids": list(value.get("policy_ids") or []),
        "diagnostics": list(value.get("diagnostics") or []),
        "request": _request(value.get("request") or ""),
        "decided_at": env["occurred_at"],
    }


def _request(text: str) -> Any:
    """The recorded Cedar request, parsed; None when there is none or it is not JSON (which
    must not stop the projection). NUL in its text becomes U+FFFD where rows are written."""
    try:
        return strict_json(text) if text else None
    except ValueError:
        return None
