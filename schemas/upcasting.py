"""Upcasting: old events read as today's, where a default alone would change their meaning.

Avro schema resolution already fills a new field with its default. An upcaster is for the
cases where that default is wrong for old data. The first real one: `TenantCreated` gained
`limits` in v2, with defaults meant for new tenants. Tenants created under v1 were never
limited; reading their creation as if they had the new defaults would silently cap them. So a
v1 `TenantCreated` (its writer schema has no `limits`) is upcast to unlimited limits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# What "no limits" meant before v2: the largest value each limit's Avro type holds. (The
# tenant aggregate applies the same rule to its stored state: commands/tenant.py.)
UNLIMITED = {
    "max_concurrent_tasks": 2**31 - 1,
    "tasks_per_minute": 2**31 - 1,
    "max_fuel": 2**63 - 1,
    "max_memory_mb": 2**31 - 1,
    "max_timeout_ms": 2**31 - 1,
    "max_module_bytes": 2**63 - 1,
}


@dataclass(frozen=True)
class Upcaster:
    record: str
    reason: str
    applies: Callable[[dict[str, Any]], bool]  # given the writer's schema
    upcast: Callable[[dict[str, Any]], dict[str, Any]]


def writer_lacks(field: str) -> Callable[[dict[str, Any]], bool]:
    def lacks(writer: dict[str, Any]) -> bool:
        return field not in {f["name"] for f in writer.get("fields", [])}

    return lacks


UPCASTERS: tuple[Upcaster, ...] = (
    Upcaster(
        "aion.tenant.TenantCreated",
        "v1 tenants were created before limits existed: they stay unlimited",
        writer_lacks("limits"),
        lambda value: {**value, "limits": dict(UNLIMITED)},
    ),
)


def upcast(record: str, writer: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """The value as the current schema means it, given the schema it was written with."""
    for upcaster in UPCASTERS:
        if upcaster.record == record and upcaster.applies(writer):
            value = upcaster.upcast(value)
    return value
