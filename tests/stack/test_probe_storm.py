"""Public probes under a storm of scrapes (issue 17, finding 6).

``/metrics``, ``/readyz`` and ``/health`` are public. Each used to measure projection lag with
a new Kafka consumer and new Postgres connections per request, ``/metrics`` on the API's event
loop itself: a burst of scrapes multiplied the work on Kafka and Postgres and held every other
request behind it. Here 200 of them arrive at once; the lag is measured a handful of times
(``aion_projection_lag_measurements_total``), not once per scrape, and a plain request answers
meanwhile.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from projections.lag import MAX_AGE_S

SCRAPES = {"/metrics": 80, "/readyz": 80, "/health": 40}


def measurements(system: str) -> float:
    text = httpx.get(f"{system}/metrics", timeout=30).text
    found = re.search(r"^aion_projection_lag_measurements_total (\S+)$", text, re.M)
    assert found, "the API does not count its lag measurements"
    return float(found.group(1))


def test_a_storm_of_scrapes_measures_lag_a_few_times_and_the_api_keeps_answering(
    system: str,
) -> None:
    before = measurements(system)
    paths = [path for path, n in SCRAPES.items() for _ in range(n)]
    slowest = 0.0
    started = time.monotonic()
    with httpx.Client(base_url=system, timeout=60) as client, ThreadPoolExecutor(50) as pool:
        answers = [pool.submit(client.get, path) for path in paths]
        while not all(a.done() for a in answers):
            asked = time.monotonic()
            assert client.get("/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - asked)
            time.sleep(0.05)
        statuses = [a.result().status_code for a in answers]
    took = time.monotonic() - started
    measured = measurements(system) - before
    assert statuses.count(200) == len(paths), statuses
    # One measurement per MAX_AGE_S at most while the storm lasted, and the two reads of the
    # counter: never one per scrape.
    assert measured <= took / MAX_AGE_S + 3, (measured, took)
    assert measured < len(paths) / 10
    # Nothing on the event loop waited for Kafka or Postgres (a generous bound: one request).
    assert slowest < 3.0, slowest
