"""The outcome of a command whose effects cannot be produced: a small rejection, no state change.

In place of its plan, such a command yields one ``aion.CommandRejected`` on its aggregate's
events topic (its caller's ``Prefer: wait`` and ``GET /v1/commands/{id}`` show the code and
reason) and one write: its id added to its aggregate document's recent list, the state as it
was, so that a redelivery (or a replay after the limits changed) is skipped, not decided anew.

The rejection's event id is derived from the command id *and the refusal*, never the plan's
``uuid5(command id, index)``: some of the plan's messages may already be on the broker, and an
event id must never be produced twice with different contents (decision 49).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from commands.aggregates import aggregate_for
from commands.model import Command
from schemas.topics import events_topic
from streams.plan import RECENT_COMMANDS, Emission, event_envelope, state_key
from streams.producibility import Refusal

REJECTED = "aion.CommandRejected"
REFUSAL_NAMESPACE = uuid.UUID("3b0c1f52-8e1d-4a57-9f0e-6a4c2d7b9e31")
REMEMBERED = 4096  # broker refusals remembered by one worker (command id -> refusal)

Read = Callable[[str], dict[str, Any] | None]


def refusal_event_id(command_id: str, refused: Refusal) -> str:
    """The same on every replay of the same refusal; another refusal gets another id."""
    return str(uuid.uuid5(REFUSAL_NAMESPACE, f"{command_id}/{refused.code}/{refused.reason}"))


def rejection(
    command: Command, refused: Refusal, read: Read
) -> tuple[Emission, dict[str, dict[str, Any]]]:
    """The rejection record and the one document write that replace the command's plan."""
    aggregate = aggregate_for(command.type)
    aggregate_id = str(command.envelope["aggregate_id"])
    key = state_key(aggregate.name, aggregate_id)
    document = read(key) or {"state": None, "recent": []}
    version = int(aggregate.load(document["state"]).version)
    identity = refusal_event_id(command.command_id, refused)
    envelope = event_envelope(
        command, identity, REJECTED, aggregate.name, aggregate_id, version, outcome=True
    )
    envelope["outcome_events"] = 1
    value = {
        "envelope": envelope,
        "command_type": command.type,
        "code": refused.code,
        "reason": refused.reason,
        "field": None,
        "current_version": version,
    }
    recent = [*document.get("recent", []), command.command_id][-RECENT_COMMANDS:]
    written = {**document, "recent": recent}
    return Emission(events_topic(aggregate.name), aggregate_id, REJECTED, value), {key: written}


class Remembered:
    """Commands the broker refused after they were sent, so that re-handling them rejects them
    at planning instead of sending them again; bounded, oldest forgotten first."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self.size = size
        self.refusals: OrderedDict[str, Refusal] = OrderedDict()
        self.rejection_failed: set[str] = set()  # even the rejection was refused: dead-letter

    def get(self, command_id: str) -> Refusal | None:
        return self.refusals.get(command_id)

    def put(self, command_id: str, refused: Refusal) -> None:
        if command_id in self.refusals:
            self.rejection_failed.add(command_id)
        self.refusals[command_id] = refused
        self.refusals.move_to_end(command_id)
        while len(self.refusals) > self.size:
            forgotten, _ = self.refusals.popitem(last=False)
            self.rejection_failed.discard(forgotten)

    def must_deadletter(self, command_id: str) -> bool:
        return command_id in self.rejection_failed
