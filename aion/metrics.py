"""Prometheus metrics of the process roles, and the endpoint of those without an HTTP server.

Every metric is defined here, once, so that the alert rules and dashboards in ``compose/`` can
be checked against one list (``tests/test_alert_rules.py``); each role updates those it has.
The API serves them on its own ``/metrics``; the worker, kernel and projector on
``Settings.metrics_port_of(role)`` (18101, 18102, 18103).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from aion.settings import Settings

log = logging.getLogger(__name__)

# Seconds from a few milliseconds (one command, one event) to a minute (a queue that stalls).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Runs: a reactor call takes under a millisecond; quotas allow up to minutes.
RUN_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Fuel is roughly one unit per WASM instruction: decades from a thousand to ten billion.
FUEL_BUCKETS = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10)

# --- worker: the command processor and the orchestrator -------------------------------------

COMMANDS_DECIDED = Counter(
    "aion_commands_decided",
    "Commands decided by the command processor (outcome: accepted, rejected, denied)",
    ["command_type", "outcome"],
)
COMMAND_DECISION_SECONDS = Histogram(
    "aion_command_decision_seconds",
    "From a command's issued_at to its events acknowledged by Kafka",
    ["command_type"],
    buckets=LATENCY_BUCKETS,
)
POLICY_DECISIONS = Counter(
    "aion_policy_decisions",
    "Cedar verdicts recorded as EnforcementDecided (decision: allow, deny)",
    ["action", "decision"],
)
SCHEDULER_TASKS = Gauge(
    "aion_scheduler_tasks",
    "Live tasks in the schedulers of this worker's partitions, by phase (queued: the backlog)",
    ["phase"],
)
COMMANDS_UNPRODUCIBLE = Counter(
    "aion_commands_unproducible",
    "Commands whose effects could not be produced, rejected or dead-lettered instead (reason: "
    "too_large, unencodable, broker_refused, conflict)",
    ["reason"],
)
COMMAND_HANDLING_FAILURES = Counter(
    "aion_command_handling_failures",
    "Commands whose handling raised: handled again after a backoff (retried), or rejected "
    "with internal_error after too many attempts (rejected)",
    ["command_type", "outcome"],
)
DEADLETTERS = Counter(
    "aion_deadletters",
    "Messages sent to aion.deadletter (undecodable, unknown command, a decider that failed)",
    ["source_topic"],
)

# --- kernel worker --------------------------------------------------------------------------

KERNEL_RUNS = Counter(
    "aion_kernel_runs",
    "Runs a kernel worker finished (outcome: succeeded, failed; reason: why it failed)",
    ["outcome", "reason"],
)
KERNEL_RUN_SECONDS = Histogram(
    "aion_kernel_run_duration_seconds",
    "Wall-clock time of a run in the sandbox",
    ["outcome"],
    buckets=RUN_BUCKETS,
)
KERNEL_FUEL_USED = Histogram(
    "aion_kernel_fuel_used",
    "Fuel a run consumed (about one unit per WASM instruction)",
    ["outcome"],
    buckets=FUEL_BUCKETS,
)
KERNEL_RUNS_ACTIVE = Gauge("aion_kernel_runs_active", "Runs executing now in this worker")

# --- projections ----------------------------------------------------------------------------

PROJECTION_EVENTS = Counter(
    "aion_projection_events_applied",
    "Events a projection applied (skipped poison messages not included)",
    ["projection"],
)
PROJECTION_BATCH_SECONDS = Histogram(
    "aion_projection_batch_seconds",
    "One batch of a projection: apply its events and commit them with their positions",
    ["projection"],
    buckets=LATENCY_BUCKETS,
)


class ProjectionLagCollector(Collector):
    """``aion_projection_lag_messages{projection}``, from ``source``: the process's shared lag
    measurement (``projections.lag.lag_cache``), so that it is right whichever process serves
    it and a scrape never measures on its own (issue 17, finding 6). ``source`` answers None
    when there is no measurement yet, or the last one failed: no sample, not a failed scrape."""

    NAME = "aion_projection_lag_messages"
    HELP = "Events on Kafka not yet applied by the projection"

    def __init__(self, source: Callable[[], dict[str, int] | None]) -> None:
        self.source = source

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration asks for names; without this it would call collect() and reach Kafka.
        yield GaugeMetricFamily(self.NAME, self.HELP, labels=["projection"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["projection"])
        for name, behind in (self.source() or {}).items():
            family.add_metric([name], behind)
        yield family


_lag_registered: list[bool] = []


def register_lag_metric(source: Callable[[], dict[str, int] | None]) -> None:
    """Once per process (tests build several apps in one process)."""
    if not _lag_registered:
        REGISTRY.register(ProjectionLagCollector(source))
        _lag_registered.append(True)


def serve(settings: Settings, role: str, registry: CollectorRegistry = REGISTRY) -> int:
    """Serve /metrics on the role's port (on ``AION_API_HOST``, 127.0.0.1 by default).

    Returns the port, or 0 when off or taken: a second worker on one machine must still run,
    so a taken port is a warning (set ``AION_METRICS_PORT`` per process to scrape each).
    """
    port = settings.metrics_port_of(role)
    if not port:
        return 0
    try:
        start_http_server(port, addr=settings.api_host, registry=registry)
    except OSError as exc:
        log.warning("metrics port %s:%d not served: %s", settings.api_host, port, exc)
        return 0
    log.info("metrics on http://%s:%d/metrics", settings.api_host, port)
    return port
