"""Group commit: the commands of one batch share one wait for Kafka's acks.

Decision 15's order holds for every command: its messages are acknowledged by the broker before
its state is stored. Waiting for that per command capped a partition at one ack round trip per
command (~300 commands/s here); a batch of commands now plans and sends one after the other,
waits for all their acks together, then stores all their documents, in command order.

A later command of the batch must see what an earlier one decided, before it is stored: reads
go through the batch's overlay of documents written so far. A crash before the writes replays
the whole batch against the old state and yields the same messages with the same ids (the
duplicates every consumer drops). Faust acknowledges a batch's source offsets only after the
agent's body returns (``Stream.take_events``), so no offset is committed past unstored state.

Faust's tables (and their RocksDB store) pick the partition of a write from the event being
processed, a context variable that ``take_events`` does not set in the agent's task: each
command's reads and writes run with its own event set there (``processing``).
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from faust import streams as faust_streams
from faust.types import EventT

BATCH_SIZE = 256  # at most this many commands share one wait for acks
BATCH_WAIT_SECONDS = 0.002  # an idle partition's command waits at most this long for company


@contextmanager
def processing(event: EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event in this task (the partition of table reads/writes)."""
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


@dataclass
class Decided:
    """One command of the batch that was planned and sent, waiting for the batch's acks."""

    event: EventT
    command: Any
    emissions: list[Any]
    writes: dict[str, bytes]


@dataclass
class GroupCommit:
    """The batch's pending acks, its overlay of unstored documents and its decided commands."""

    acks: list[Awaitable[Any]] = field(default_factory=list)
    overlay: dict[str, bytes] = field(default_factory=dict)
    decided: list[Decided] = field(default_factory=list)

    def read(self, key: str, stored: Any) -> dict[str, Any] | None:
        """The document as the batch left it so far, else as stored."""
        raw = self.overlay.get(key)
        if raw is None:
            raw = stored.get(key)
        return json.loads(raw) if raw else None

    def add(
        self, event: EventT, command: Any, emissions: list[Any], writes: dict[str, Any]
    ) -> None:
        encoded = {key: json.dumps(document).encode() for key, document in writes.items()}
        self.overlay.update(encoded)
        self.decided.append(Decided(event, command, emissions, encoded))

    async def acknowledged(self) -> None:
        """Every message the batch sent, acknowledged by the broker (or an error raised)."""
        acks, self.acks = self.acks, []
        await asyncio.gather(*acks)
