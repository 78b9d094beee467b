"""The policies read model: each Cedar policy of a tenant, active or deleted.

Version-guarded: PolicyPut is an upsert that only overwrites an older version, PolicyDeleted an
update of an older version, so a duplicate or an older event changes nothing. A deleted policy
keeps its row (and its text) until a later PolicyPut makes it active again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from commands.policy import DELETED, PUT_DONE
from projections.bulk import BatchPart, Rows
from projections.runner import Delivered
from projections.storable import storable
from schemas.topics import events_topic

COLUMNS = ("cedar", "description", "status", "policy_version", "version", "updated_at")


class PoliciesProjection(BatchPart):
    name = "policies"
    topics: tuple[str, ...] = (events_topic("policy"),)

    def steps(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> Iterator[None]:
        events = [
            (name, storable(value))
            for name, value, _ in batch
            if name in (PUT_DONE, DELETED) and value["envelope"]["aggregate_type"] == "policy"
        ]
        policies = Rows("policies", ("tenant_id", "policy_id"), COLUMNS)
        keys = {(v["envelope"]["tenant_id"], v["policy_id"]) for _, v in events}
        policies.load(cur, ("tenant_id", "policy_id"), keys)
        yield
        for name, value in events:
            fold(policies, name, value)
        policies.flush(cur)


def fold(policies: Rows, name: str, value: dict[str, Any]) -> None:
    """A put makes the row or overwrites an older version; a delete marks an older one."""
    env = value["envelope"]
    version, at = env["aggregate_version"], env["occurred_at"]
    row = policies.get((env["tenant_id"], value["policy_id"]))
    if name == DELETED:
        if row is not None and row["version"] < version:
            row.update(status="deleted", version=version, updated_at=at)
        return
    fields = {
        "cedar": value["cedar"],
        "description": value.get("description") or "",
        "status": "active",
        "policy_version": value["policy_version"],
        "version": version,
        "updated_at": at,
    }
    if row is None:
        policies.put(
            {"tenant_id": env["tenant_id"], "policy_id": value["policy_id"], **fields}
            | {"created_at": at}
        )
    elif row["version"] < version:
        row.update(fields)
