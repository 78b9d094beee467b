"""The models read model: a tenant's catalog of registered models.

An upsert that only overwrites an older version, so a duplicate changes nothing. (A model has
one event today, ModelRegistered at version 1; the guard keeps later events safe to add.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from commands.model_registry import REGISTERED
from projections.bulk import BatchPart, Rows
from projections.runner import Delivered
from projections.storable import storable
from schemas.topics import events_topic

COLUMNS = ("provider", "kind", "parameters", "description", "version", "updated_at")


class ModelsProjection(BatchPart):
    name = "models"
    topics: tuple[str, ...] = (events_topic("model"),)

    def steps(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> Iterator[None]:
        events = [
            storable(value)
            for name, value, _ in batch
            if name == REGISTERED and value["envelope"]["aggregate_type"] == "model"
        ]
        models = Rows("models", ("tenant_id", "model_name"), COLUMNS)
        keys = {(v["envelope"]["tenant_id"], v["model_name"]) for v in events}
        models.load(cur, ("tenant_id", "model_name"), keys)
        yield
        for value in events:
            fold(models, value)
        models.flush(cur)


def fold(models: Rows, value: dict[str, Any]) -> None:
    """A registration makes the row or overwrites an older version of it."""
    env = value["envelope"]
    fields = {
        "provider": value["provider"],
        "kind": value["kind"],
        "parameters": value.get("parameters") or {},
        "description": value.get("description") or "",
        "version": env["aggregate_version"],
        "updated_at": env["occurred_at"],
    }
    row = models.get((env["tenant_id"], value["model_name"]))
    if row is None:
        models.put(
            {"tenant_id": env["tenant_id"], "model_name": value["model_name"], **fields}
            | {"status": "registered", "created_at": env["occurred_at"]}
        )
    elif row["version"] < fields["version"]:
        row.update(fields)
