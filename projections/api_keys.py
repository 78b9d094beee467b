"""The API keys read model: what the API checks a presented key against.

Version-guarded like the other entity models: a duplicate or older event changes nothing. A
revoked key keeps its row (status ``revoked``) so that its id is never reused silently.
"""

from __future__ import annotations

from typing import Any

import psycopg

from commands.api_key import CREATED, REVOKED
from projections.runner import Position
from projections.storable import storable
from schemas.topics import events_topic

CREATE = (
    "insert into api_keys (tenant_id, key_id, name, roles, secret_sha256, rate_per_s, burst,"
    " expires_at, status, created_by, version, created_at, updated_at) values (%(tenant)s,"
    " %(key)s, %(name)s, %(roles)s, %(secret)s, %(rate)s, %(burst)s, %(expires)s, 'active',"
    " %(actor)s, %(version)s, %(at)s, %(at)s) on conflict (key_id) do nothing"
)
REVOKE = (
    "update api_keys set status = 'revoked', revoked_reason = %(reason)s, version = %(version)s,"
    " updated_at = %(at)s where key_id = %(key)s and tenant_id = %(tenant)s"
    " and version < %(version)s"
)


class ApiKeysProjection:
    name = "api_keys"
    topics: tuple[str, ...] = (events_topic("api_key"),)

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        env = value["envelope"]
        if record_name not in (CREATED, REVOKED) or env["aggregate_type"] != "api_key":
            return
        value = storable(value)
        params = {
            "tenant": env["tenant_id"],
            "key": value["key_id"],
            "version": env["aggregate_version"],
            "at": env["occurred_at"],
        }
        if record_name == REVOKED:
            cur.execute(REVOKE, {**params, "reason": value.get("reason") or ""})
            return
        cur.execute(
            CREATE,
            {
                **params,
                "name": value["name"],
                "roles": list(value["roles"]),
                "secret": value["secret_sha256"],
                "rate": value.get("rate_per_s"),
                "burst": value.get("burst"),
                "expires": value.get("expires_at"),
                "actor": env["actor"],
            },
        )
