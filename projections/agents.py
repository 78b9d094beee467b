"""The agents read model: each agent's current manifest and status, and every version it had.

Version-guarded: AgentDeployed inserts (a duplicate conflicts and does nothing); AgentUpdated
and AgentRetired change the row only when their version is newer than its own, and a
version's row in `agent_versions` is written only by the event that passed the guard.
AgentDeploymentRejected changes nothing (the agent stays absent, as in `commands/agent.py`).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from commands.agent import DEPLOYED, RETIRED, UPDATED
from projections.runner import Position
from projections.storable import storable
from schemas.topics import events_topic

DEPLOY = (
    "insert into agents (tenant_id, agent_name, status, agent_version, manifest, description,"
    " labels, version, created_at, updated_at) values (%(tenant)s, %(name)s, 'deployed',"
    " %(agent_version)s, %(manifest)s, %(description)s, %(labels)s, %(version)s, %(at)s, %(at)s)"
    " on conflict (tenant_id, agent_name) do nothing"
)
UPDATE = (
    "update agents set agent_version = %(agent_version)s, manifest = %(manifest)s,"
    " description = %(description)s, labels = %(labels)s, version = %(version)s,"
    " updated_at = %(at)s"
    " where tenant_id = %(tenant)s and agent_name = %(name)s and version < %(version)s"
)
RETIRE = (
    "update agents set status = 'retired', retired_reason = %(reason)s, version = %(version)s,"
    " updated_at = %(at)s"
    " where tenant_id = %(tenant)s and agent_name = %(name)s and version < %(version)s"
)
NEW_VERSION = (
    "insert into agent_versions (tenant_id, agent_name, agent_version, manifest, module_digest,"
    " deployed_at) values (%(tenant)s, %(name)s, %(agent_version)s, %(manifest)s,"
    " %(module_digest)s, %(at)s) on conflict do nothing"
)


class AgentsProjection:
    name = "agents"
    topics: tuple[str, ...] = (events_topic("agent"),)

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        env = value["envelope"]
        if record_name not in (DEPLOYED, UPDATED, RETIRED) or env["aggregate_type"] != "agent":
            return
        value = storable(value)
        params: dict[str, Any] = {
            "tenant": env["tenant_id"],
            "name": value["agent_name"],
            "version": env["aggregate_version"],
            "at": env["occurred_at"],
        }
        if record_name == RETIRED:
            cur.execute(RETIRE, {**params, "reason": value.get("reason") or ""})
            return
        manifest = value["manifest"]
        params |= {
            "agent_version": manifest["version"],
            "manifest": Jsonb(manifest),
            "module_digest": manifest["module_digest"],
            "description": manifest.get("description") or "",
            "labels": Jsonb(manifest.get("labels") or {}),
        }
        cur.execute(DEPLOY if record_name == DEPLOYED else UPDATE, params)
        if cur.rowcount:
            cur.execute(NEW_VERSION, params)
