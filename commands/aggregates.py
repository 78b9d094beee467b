"""The aggregates, and the one generic step every command goes through before its decider."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from commands import tenant
from commands.model import Command, Decision, Event, Rejection


@dataclass(frozen=True)
class Aggregate:
    name: str
    commands: frozenset[str]
    initial: Callable[[], Any]
    decide: Callable[[Any, Command], Decision]
    evolve: Callable[[Any, Event], Any]

    def load(self, document: dict[str, Any] | None) -> Any:
        """State from its stored JSON document (a Faust table value)."""
        return self.initial() if not document else self.initial().__class__(**document)

    def dump(self, state: Any) -> dict[str, Any]:
        return asdict(state)

    def handle(self, state: Any, command: Command) -> Decision:
        """Optimistic concurrency first, then the aggregate's own decider."""
        expected = command.expected_version
        if expected is not None and expected != state.version:
            return Rejection(
                "version_conflict",
                f"expected version {expected}, but the {self.name} is at version {state.version}",
            )
        return self.decide(state, command)

    def fold(self, state: Any, events: list[Event]) -> Any:
        for event in events:
            state = self.evolve(state, event)
        return state


AGGREGATES: dict[str, Aggregate] = {
    tenant.AGGREGATE: Aggregate(
        tenant.AGGREGATE,
        frozenset({tenant.CREATE}),
        tenant.TenantState,
        tenant.decide,
        tenant.evolve,
    ),
}


def aggregate_for(command_type: str) -> Aggregate:
    for aggregate in AGGREGATES.values():
        if command_type in aggregate.commands:
            return aggregate
    raise KeyError(f"no aggregate handles {command_type}")
