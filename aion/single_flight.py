"""A value worth a few seconds, computed by one caller at a time and shared by all the others.

Public probes (``/metrics``, ``/readyz``, ``/health``) answer from such a value, so that a
hundred scrapes at once cost the servers behind them what one scrape costs, and none of them
runs the work on the API's event loop: ``SingleFlight`` computes in a thread (its blocking
``get`` is for threads such as the projector's metrics server), ``AsyncSingleFlight`` awaits a
coroutine on the loop. A failure is kept like a value, for as long, so an outage is not probed
again by every caller.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What the last computation gave: its value or its error, and when (monotonic)."""

    value: T | None
    error: str | None
    at: float

    def age(self) -> float:
        return time.monotonic() - self.at


def _outcome(compute: Callable[[], T]) -> Outcome[T]:
    try:
        return Outcome(compute(), None, time.monotonic())
    except Exception as exc:  # kept and shown, never raised at the caller
        return Outcome(None, f"{type(exc).__name__}: {exc}", time.monotonic())


class SingleFlight(Generic[T]):
    """``compute`` (blocking) run at most once per ``max_age`` seconds, by one thread at once."""

    def __init__(self, compute: Callable[[], T], max_age: float) -> None:
        self.compute = compute
        self.max_age = max_age
        self.lock = threading.Lock()
        self.last: Outcome[T] | None = None
        self.computations = 0
        self._task: asyncio.Future[Outcome[T] | None] | None = None

    def fresh(self) -> Outcome[T] | None:
        last = self.last
        return last if last is not None and last.age() < self.max_age else None

    def get(self, wait: float) -> Outcome[T] | None:
        """The fresh outcome, computed here if nobody is; a caller that waited ``wait``
        seconds for another's computation gets the last outcome (None before the first)."""
        found = self.fresh()
        if found is not None:
            return found
        if not self.lock.acquire(timeout=wait):
            return self.last
        try:
            found = self.fresh()  # computed while this caller waited for the lock
            if found is None:
                self.computations += 1
                found = self.last = _outcome(self.compute)
            return found
        finally:
            self.lock.release()

    async def aget(self, wait: float) -> Outcome[T] | None:
        """``get`` for the event loop: callers of one loop share one thread's computation, and
        wait for it at most ``wait`` seconds (then get the last outcome)."""
        found = self.fresh()
        if found is not None:
            return found
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._task = asyncio.ensure_future(asyncio.to_thread(self.get, wait))
        try:
            return await asyncio.wait_for(asyncio.shield(task), wait)
        except TimeoutError:
            return self.last


class AsyncSingleFlight(Generic[T]):
    """``compute`` (a coroutine) run at most once per ``max_age`` seconds; concurrent callers
    await the one run that is going."""

    def __init__(self, compute: Callable[[], Awaitable[T]], max_age: float) -> None:
        self.compute = compute
        self.max_age = max_age
        self.last: Outcome[T] | None = None
        self.computations = 0
        self._task: asyncio.Future[Outcome[T]] | None = None

    async def _run(self) -> Outcome[T]:
        self.computations += 1
        try:
            outcome: Outcome[T] = Outcome(await self.compute(), None, time.monotonic())
        except Exception as exc:
            outcome = Outcome(None, f"{type(exc).__name__}: {exc}", time.monotonic())
        self.last = outcome
        return outcome

    async def get(self) -> Outcome[T]:
        last = self.last
        if last is not None and last.age() < self.max_age:
            return last
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._task = asyncio.ensure_future(self._run())
        return await asyncio.shield(task)
