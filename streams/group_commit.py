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
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from faust import streams as faust_streams
from faust.types import EventT

BATCH_SIZE = 256  # at most this many commands share one wait for acks
BATCH_WAIT_SECONDS = 0.01  # an idle partition's command waits at most this long for company


@contextmanager
def processing(event: EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event in this task (the partition of table reads/writes)."""
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def acknowledged(ack: Awaitable[Any]) -> bool:
    """True when the broker acknowledged the message (after ``GroupCommit.settle``)."""
    if not isinstance(ack, asyncio.Future) or not ack.done() or ack.cancelled():
        return False
    return ack.exception() is None


@dataclass
class Decided:
    """One command of the batch that was planned and sent, waiting for the batch's acks."""

    event: EventT
    command: Any
    emissions: list[Any]
    writes: dict[str, bytes | None]  # None: delete the document
    acks: list[Awaitable[Any]] = field(default_factory=list)  # one per emission, in order
    position: int = 0  # the command's place in the batch's events

    @property
    def partition(self) -> int:
        """The partition its documents belong to (a replicated fact's key is on several)."""
        return int(self.event.message.partition) if self.event is not None else 0


@dataclass(frozen=True)
class Failure:
    """The first command of the batch (in order) whose message was not acknowledged."""

    index: int  # into ``GroupCommit.decided``
    emission: Any
    error: Exception


@dataclass
class Attempts:
    """What earlier passes over the same events left on the broker, while one batch is
    re-handled after a refusal: a re-planned event must say what its first attempt said."""

    produced: dict[str, str] = field(default_factory=dict)  # event id -> content fingerprint
    deadlettered: set[tuple[int, int]] = field(default_factory=set)  # (partition, offset)


@dataclass
class GroupCommit:
    """The batch's decided commands with their pending acks, and its overlay of unstored
    documents."""

    overlay: dict[tuple[int, str], bytes | None] = field(default_factory=dict)
    decided: list[Decided] = field(default_factory=list)
    halted: bool = False  # a send failed at once: plan no further command in this batch

    def read(self, key: str, stored: Any, partition: int = 0) -> dict[str, Any] | None:
        """The document of the partition as the batch left it so far (None if it deleted
        it), else as stored."""
        mine = (partition, key)
        raw = self.overlay[mine] if mine in self.overlay else stored.get(key)
        return orjson.loads(raw) if raw else None

    def add(self, decided: Decided) -> None:
        """A command whose messages were sent: later commands of the batch read its writes."""
        for key, raw in decided.writes.items():
            self.overlay[(decided.partition, key)] = raw
        self.decided.append(decided)

    async def settle(self, flush: Callable[[], Awaitable[None]] | None = None) -> Failure | None:
        """Wait for every message the batch sent (``flush`` resolves their acks); the first
        failure in command order."""
        if flush is not None:
            await flush()
        results = await asyncio.gather(
            *(ack for decided in self.decided for ack in decided.acks), return_exceptions=True
        )
        found: Failure | None = None
        flat = iter(results)
        for index, decided in enumerate(self.decided):
            for emission in decided.emissions[: len(decided.acks)]:
                result = next(flat)
                if isinstance(result, BaseException) and not isinstance(result, Exception):
                    raise result  # cancelled: not the broker's answer
                if found is None and isinstance(result, Exception):
                    found = Failure(index, emission, result)
        return found

    def acknowledged_from(self, index: int) -> list[tuple[Any, bool]]:
        """(emission, acknowledged) of the commands from ``index`` on, after ``settle``."""
        outcome = []
        for decided in self.decided[index:]:
            for emission, ack in zip(decided.emissions, decided.acks, strict=False):
                outcome.append((emission, acknowledged(ack)))
        return outcome
