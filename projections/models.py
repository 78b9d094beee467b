"""The models read model: a tenant's catalog of registered models.

An upsert that only overwrites an older version, so a duplicate changes nothing. (A model has
one event today, ModelRegistered at version 1; the guard keeps later events safe to add.)
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from commands.model_registry import REGISTERED
from projections.runner import Position
from projections.storable import storable
from schemas.topics import events_topic


class ModelsProjection:
    name = "models"
    topics: tuple[str, ...] = (events_topic("model"),)

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        env = value["envelope"]
        if record_name != REGISTERED or env["aggregate_type"] != "model":
            return
        value = storable(value)
        cur.execute(
            "insert into models (tenant_id, model_name, provider, kind, parameters, description,"
            " status, version, created_at, updated_at) values (%(tenant)s, %(name)s,"
            " %(provider)s, %(kind)s, %(parameters)s, %(description)s, 'registered',"
            " %(version)s, %(at)s, %(at)s)"
            " on conflict (tenant_id, model_name) do update set provider = excluded.provider,"
            " kind = excluded.kind, parameters = excluded.parameters,"
            " description = excluded.description, version = excluded.version,"
            " updated_at = excluded.updated_at where models.version < excluded.version",
            {
                "tenant": env["tenant_id"],
                "name": value["model_name"],
                "provider": value["provider"],
                "kind": value["kind"],
                "parameters": Jsonb(value.get("parameters") or {}),
                "description": value.get("description") or "",
                "version": env["aggregate_version"],
                "at": env["occurred_at"],
            },
        )
