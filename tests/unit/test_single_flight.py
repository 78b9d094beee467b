"""Shared, cached computations: many callers at once cost one computation (issue 17, finding 6)."""

from __future__ import annotations

import asyncio
import threading
import time

from aion.single_flight import AsyncSingleFlight, SingleFlight


def slow(calls: list[int], seconds: float = 0.3) -> int:
    calls.append(1)
    time.sleep(seconds)
    return len(calls)


def test_threads_at_once_share_one_computation() -> None:
    calls: list[int] = []
    cache = SingleFlight(lambda: slow(calls), max_age=60)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(wait=10))) for _ in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and cache.computations == 1
    assert {r.value for r in results} == {1}  # type: ignore[attr-defined]


def test_a_caller_that_waits_too_long_gets_the_last_outcome() -> None:
    calls: list[int] = []
    cache = SingleFlight(lambda: slow(calls, 1.0), max_age=0)
    first = threading.Thread(target=cache.get, args=(10,))
    first.start()
    time.sleep(0.1)
    assert cache.get(wait=0.05) is None  # nothing measured yet, and not measured again here
    first.join()
    assert len(calls) == 1


def test_a_failure_is_kept_like_a_value() -> None:
    calls: list[int] = []

    def failing() -> int:
        calls.append(1)
        raise ConnectionError("kafka away")

    cache = SingleFlight(failing, max_age=60)
    outcome = cache.get(wait=1)
    assert outcome is not None and outcome.error == "ConnectionError: kafka away"
    assert cache.get(wait=1) is outcome and len(calls) == 1  # not probed again meanwhile


def test_event_loop_callers_share_one_thread_and_the_loop_keeps_running() -> None:
    calls: list[int] = []
    cache = SingleFlight(lambda: slow(calls, 0.5), max_age=60)

    async def main() -> tuple[list[object], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.ensure_future(ticker())
        results = await asyncio.gather(*(cache.aget(wait=10) for _ in range(50)))
        ticking.cancel()
        return list(results), ticks

    results, ticks = asyncio.run(main())
    assert len(calls) == 1
    assert {r.value for r in results} == {1}  # type: ignore[attr-defined]
    assert ticks >= 10  # the loop ran while the computation went on in its thread


def test_async_computations_are_shared_and_cached() -> None:
    calls: list[int] = []

    async def probe() -> int:
        calls.append(1)
        await asyncio.sleep(0.2)
        return 7

    cache = AsyncSingleFlight(probe, max_age=60)

    async def main() -> list[object]:
        first = await asyncio.gather(*(cache.get() for _ in range(30)))
        return [*first, await cache.get()]

    results = asyncio.run(main())
    assert len(calls) == 1 and cache.computations == 1
    assert {r.value for r in results} == {7}  # type: ignore[attr-defined]
