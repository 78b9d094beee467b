"""Small stored entries, and first-in first-out queues made of them. Pure, no I/O.

The orchestrator's state used to be one document per tenant holding every live task; it grew
with the tenant's work until Kafka refused it (issue 16). Its state is now many small entries
in the processor's key-value table: counters in one document, and each queued item an entry of
its own, addressed by a sequence number. A queue's document keeps only ``[head, tail]``: pushing
writes one entry, popping deletes one, so no entry grows with the queue's length.

``Entries`` is what the write side's working set offers (``streams.plan``): reads see the
command's own earlier writes; writes and deletes are stored together after the broker acked the
command's messages.
"""

from __future__ import annotations

from typing import Any, Protocol


class Entries(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, key: str) -> None: ...


class Entry:
    """One entry read once, changed in place, written back when changed."""

    def __init__(self, entries: Entries, key: str, initial: dict[str, Any]) -> None:
        self.entries = entries
        self.key = key
        self.value = entries.get(key) or dict(initial)

    def save(self) -> None:
        self.entries.put(self.key, self.value)


class Fifo:
    """A queue of entries ``<prefix>:<n>``; ``bounds`` is the ``[head, tail]`` list of its owner
    document, changed in place (the owner saves it)."""

    def __init__(self, entries: Entries, prefix: str, bounds: list[int]) -> None:
        self.entries = entries
        self.prefix = prefix
        self.bounds = bounds

    def __len__(self) -> int:
        return self.bounds[1] - self.bounds[0]

    def key(self, n: int) -> str:
        return f"{self.prefix}:{n}"

    def push(self, item: dict[str, Any]) -> None:
        self.entries.put(self.key(self.bounds[1]), item)
        self.bounds[1] += 1

    def peek(self) -> dict[str, Any] | None:
        if not len(self):
            return None
        return self.entries.get(self.key(self.bounds[0])) or {}

    def pop(self) -> None:
        if len(self):
            self.entries.delete(self.key(self.bounds[0]))
            self.bounds[0] += 1
