"""The policies read model: each Cedar policy of a tenant, active or deleted.

Version-guarded: PolicyPut is an upsert that only overwrites an older version, PolicyDeleted an
update of an older version, so a duplicate or an older event changes nothing. A deleted policy
keeps its row (and its text) until a later PolicyPut makes it active again.
"""

from __future__ import annotations

from typing import Any

import psycopg

from commands.policy import DELETED, PUT_DONE
from projections.runner import Position
from projections.storable import storable
from schemas.topics import events_topic

PUT = (
    "insert into policies (tenant_id, policy_id, cedar, description, status, policy_version,"
    " version, created_at, updated_at) values (%(tenant)s, %(policy)s, %(cedar)s,"
    " %(description)s, 'active', %(policy_version)s, %(version)s, %(at)s, %(at)s)"
    " on conflict (tenant_id, policy_id) do update set cedar = excluded.cedar,"
    " description = excluded.description, status = 'active',"
    " policy_version = excluded.policy_version, version = excluded.version,"
    " updated_at = excluded.updated_at where policies.version < excluded.version"
)
DELETE = (
    "update policies set status = 'deleted', version = %(version)s, updated_at = %(at)s"
    " where tenant_id = %(tenant)s and policy_id = %(policy)s and version < %(version)s"
)


class PoliciesProjection:
    name = "policies"
    topics: tuple[str, ...] = (events_topic("policy"),)

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        env = value["envelope"]
        if record_name not in (PUT_DONE, DELETED) or env["aggregate_type"] != "policy":
            return
        value = storable(value)
        params = {
            "tenant": env["tenant_id"],
            "policy": value["policy_id"],
            "version": env["aggregate_version"],
            "at": env["occurred_at"],
        }
        if record_name == DELETED:
            cur.execute(DELETE, params)
            return
        cur.execute(
            PUT,
            {
                **params,
                "cedar": value["cedar"],
                "description": value.get("description") or "",
                "policy_version": value["policy_version"],
            },
        )
