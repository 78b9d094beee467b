"""What every aggregate is made of, and the generic steps before its own decider."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from commands.model import Command, Context, Decision, Event, Rejection


def _no_summary(state: Any) -> dict[str, Any]:
    return {"version": state.version}


@dataclass(frozen=True)
class Aggregate:
    name: str
    commands: frozenset[str]
    initial: Callable[[], Any]
    decide: Callable[[Any, Command, Context], Decision]
    evolve: Callable[[Any, Event], Any]
    # What other aggregates' deciders may see of this one (through Context.lookup).
    summary: Callable[[Any], dict[str, Any]] = field(default=_no_summary)
    # Tenant-scoped aggregates need an existing, active tenant for every command.
    tenant_scoped: bool = True
    # Brings a state document stored by an older version up to date (the state's upcaster).
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] = field(default=dict)
    # Commands that report facts (from the kernel): no version or tenant-standing check.
    unconditional: frozenset[str] = frozenset()

    def load(self, document: dict[str, Any] | None) -> Any:
        """State from its stored JSON document (a Faust table value)."""
        if not document:
            return self.initial()
        return self.initial().__class__(**self.upgrade(document))

    def dump(self, state: Any) -> dict[str, Any]:
        """The state as a JSON-ready dict: a shallow copy of its fields (no state nests a
        dataclass; ``dataclasses.asdict`` deep-copied every document, ~100 µs each)."""
        return {name: getattr(state, name) for name in state.__dataclass_fields__}

    def handle(self, state: Any, command: Command, context: Context | None = None) -> Decision:
        """Optimistic concurrency, the tenant's standing, then the aggregate's own decider."""
        context = context or Context()
        if command.type in self.unconditional:
            return self.decide(state, command, context)
        expected = command.expected_version
        if expected is not None and expected != state.version:
            return Rejection(
                "version_conflict",
                f"expected version {expected}, but the {self.name} is at version {state.version}",
            )
        if self.tenant_scoped:
            refusal = tenant_refusal(context, str(command.envelope["tenant_id"]))
            if refusal:
                return refusal
        return self.decide(state, command, context)

    def fold(self, state: Any, events: list[Event]) -> Any:
        for event in events:
            state = self.evolve(state, event)
        return state


def tenant_refusal(context: Context, tenant_id: str) -> Rejection | None:
    """A suspended tenant accepts no commands (but still reads); an unknown one accepts none."""
    summary = context.find("tenant", tenant_id)
    if summary is None or summary.get("status") in (None, "absent"):
        return Rejection("not_found", f"tenant {tenant_id} does not exist", "tenant")
    if summary["status"] == "suspended":
        return Rejection("suspended", f"tenant {tenant_id} is suspended", "tenant")
    return None
