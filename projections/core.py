"""The core projection: the entity read models and the command outcomes, in one transaction.

One consumer applies them together so that when `Prefer: wait` sees a command's outcome, the
rows that command changed are visible too (read-your-writes after waiting).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from projections.agents import AgentsProjection
from projections.api_keys import ApiKeysProjection
from projections.audit import AuditProjection
from projections.bulk import BatchPart
from projections.command_outcomes import CommandOutcomesProjection
from projections.enforcements import EnforcementsProjection
from projections.models import ModelsProjection
from projections.policies import PoliciesProjection
from projections.runner import Delivered, Position, Projection
from projections.tasks import TasksProjection
from projections.tenants import TenantsProjection


def default_parts() -> list[Projection]:
    """Every entity read model and the audit log, then the outcomes (which `Prefer: wait`
    polls)."""
    return [
        TenantsProjection(),
        ModelsProjection(),
        AgentsProjection(),
        PoliciesProjection(),
        TasksProjection(),
        EnforcementsProjection(),
        ApiKeysProjection(),
        AuditProjection(),
        CommandOutcomesProjection(),
    ]


class CoreProjection:
    name = "core"

    def __init__(self, parts: list[Projection] | None = None) -> None:
        self.parts = parts or default_parts()
        topics: list[str] = []
        for part in self.parts:
            topics += [t for t in part.topics if t not in topics]
        self.topics = tuple(topics)

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        self.apply_batch(cur, [(record_name, value, at)])

    def apply_batch(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> None:
        """Each part gets the whole batch's events of its topics, in order. Parts write
        disjoint tables, so part after part is the same as event after event. Every part sends
        its loads first, then each folds and writes in turn (see ``BatchPart``)."""
        started: list[Iterator[None]] = []
        for part in self.parts:
            mine = [d for d in batch if d[2].topic in part.topics]
            if not mine:
                continue
            if isinstance(part, BatchPart):
                steps = part.steps(cur, mine)
                next(steps, None)
                started.append(steps)
            else:
                for name, value, at in mine:
                    part.apply(cur, name, value, at)
        for steps in started:
            for _ in steps:
                pass
