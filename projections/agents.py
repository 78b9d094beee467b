"""The agents read model: each agent's current manifest and status, and every version it had.

Version-guarded: AgentDeployed inserts (a duplicate conflicts and does nothing); AgentUpdated
and AgentRetired change the row only when their version is newer than its own, and a
version's row in `agent_versions` is written only by the event that passed the guard.
AgentDeploymentRejected changes nothing (the agent stays absent, as in `commands/agent.py`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from commands.agent import DEPLOYED, RETIRED, UPDATED
from projections.bulk import BatchPart, Row, Rows, insert_new
from projections.runner import Delivered
from projections.storable import storable
from schemas.topics import events_topic

COLUMNS = (
    "status", "agent_version", "manifest", "description", "labels", "version",
    "retired_reason", "updated_at",
)  # fmt: skip


class AgentsProjection(BatchPart):
    name = "agents"
    topics: tuple[str, ...] = (events_topic("agent"),)

    def steps(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> Iterator[None]:
        events = [
            (name, storable(value))
            for name, value, _ in batch
            if name in (DEPLOYED, UPDATED, RETIRED)
            and value["envelope"]["aggregate_type"] == "agent"
        ]
        agents = Rows("agents", ("tenant_id", "agent_name"), COLUMNS)
        agents.load(cur, ("tenant_id", "agent_name"), {key(v) for _, v in events})
        yield
        versions: list[Row] = []
        for name, value in events:
            fold(agents, versions, name, value)
        agents.flush(cur)
        insert_new(cur, "agent_versions", versions)


def key(value: dict[str, Any]) -> tuple[str, str]:
    return value["envelope"]["tenant_id"], value["agent_name"]


def fold(agents: Rows, versions: list[Row], name: str, value: dict[str, Any]) -> None:
    """Apply one agent event if it is new to the row; a deployment or update that applied
    records its version."""
    env = value["envelope"]
    version, at = env["aggregate_version"], env["occurred_at"]
    row = agents.get(key(value))
    if name == RETIRED:
        if row is not None and row["version"] < version:
            row.update(status="retired", retired_reason=value.get("reason") or "")
            row.update(version=version, updated_at=at)
        return
    manifest = value["manifest"]
    fields = {
        "agent_version": manifest["version"],
        "manifest": manifest,
        "description": manifest.get("description") or "",
        "labels": manifest.get("labels") or {},
        "version": version,
        "updated_at": at,
    }
    if name == DEPLOYED and row is None:
        tenant, agent = key(value)
        agents.put(
            {"tenant_id": tenant, "agent_name": agent, "status": "deployed", **fields}
            | {"created_at": at}
        )
    elif name == UPDATED and row is not None and row["version"] < version:
        row.update(fields)
    else:
        return  # a duplicate or older event, or an update of an agent never deployed
    versions.append(
        {
            "tenant_id": env["tenant_id"],
            "agent_name": value["agent_name"],
            "agent_version": manifest["version"],
            "manifest": manifest,
            "module_digest": manifest["module_digest"],
            "deployed_at": at,
        }
    )
