"""Issue 17, finding 16: a consumer written from confluent-kafka's documentation, with its
defaults (the registry URL only), never hangs on our registry.

The hang: confluent-kafka 2.16's default deserializer first asks the registry for the topic's
"associations" (a Confluent API that Apicurio does not implement, so it answers an empty 404).
Now and then Apicurio never writes that 404 on a kept-alive connection, and the client, which
sets no timeout, waited for Quarkus' idle timeout (30 min). The embedded registry now closes an
idle connection after aion.stack.registry.IDLE_TIMEOUT; the client retries on a new one.

The consumer runs in a child process, killed at a bound: a hang fails the test, never stalls it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from aion.settings import Settings
from aion.stack.manager import Stack
from schemas.topics import events_topic

CONSUMER_RUNS = 5
RUN_BOUND_S = 120  # a run reads the whole history in about 10 s; a hang lasted 30 min
TOPICS = [events_topic(kind) for kind in ("tenant", "model", "agent", "policy", "task")]
# About one lost 404 in a few hundred lookups, more under load: 4 x 150 lookups hung in 2 of
# 6 rounds here, so the test makes 4 x 1000.
LOOKUP_THREADS, LOOKUPS = 4, 1000
LOOKUPS_BOUND_S = 240  # 4000 lookups take ~10 s; each lost answer costs its thread ~6 s


def stock(settings: Settings, *args: str, bound: float) -> str:
    command = [sys.executable, "-m", "tests.stack.stock_consumer", args[0], settings.kafka]
    try:
        done = subprocess.run(
            [*command, settings.registry, *args[1:]],
            capture_output=True,
            text=True,
            timeout=bound,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the stock consumer ({args[0]}) hung: still running after {bound} s")
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_stock_consumer_reads_the_history_every_time(stack: Stack, settings: Settings) -> None:
    for _ in range(CONSUMER_RUNS):
        out = stock(settings, "consume", ",".join(TOPICS), bound=RUN_BOUND_S)
        assert int(out.split()[1]) > 0, out


def test_the_default_deserializers_association_lookup_never_hangs(
    stack: Stack, settings: Settings
) -> None:
    out = stock(
        settings,
        "lookups",
        events_topic("tenant"),
        str(LOOKUP_THREADS),
        str(LOOKUPS),
        bound=LOOKUPS_BOUND_S,
    )
    assert out.split()[:2] == ["decoded", str(LOOKUP_THREADS * LOOKUPS)], out
