"""`GET /health`: the operator's view of the whole system, as JSON (the console's health page).

Each service answers or says why not (Kafka, Postgres, the schema registry, Redis, the S3
store, the search index), how far each projection is behind, how far each consumer group of
the stream worker and the kernel is behind and how many members it has, and how many messages
wait on the dead-letter topic. Public like ``/readyz`` and ``/metrics``, which expose the same
numbers; it is a report: it answers 200 whatever it finds (``/readyz`` is the probe).

Every number here comes from a ``Probes`` cache (issue 17, finding 6): the services' probes
are shared for ``PROBE_MAX_AGE_S``, the consumer groups and dead letters for
``REPORT_MAX_AGE_S``, the projections' lag for ``projections.lag.MAX_AGE_S``, each computed by
one caller while the others wait for it, off the event loop, within a bound of time. A hundred
scrapes at once cost Kafka, Postgres and the registry what one costs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aion.single_flight import AsyncSingleFlight, Outcome, SingleFlight
from api.state import ApiState
from projections.health import projection_states
from projections.lag import BUDGET_S, end_offsets, lag_cache
from projections.service import topics_by_projection
from schemas.topics import DEADLETTER

PATH = "/health"
SUMMARY = (
    "The operator's view: each service, projection and consumer-group lag, and the "
    "dead-letter count"
)
# The process roles that consume through a Kafka consumer group: name -> group id.
CONSUMER_GROUPS = {"worker": "aion-streams", "kernel": "aion-kernel"}
TIMEOUT_S = 5
READINESS = ("kafka", "postgres", "registry")  # what serving a command needs
PROBE_MAX_AGE_S = 1.0
REPORT_MAX_AGE_S = 5.0
WAIT_S = BUDGET_S + 1  # a caller waits this long for a computation it shares, then the last


def group_lag(
    committed: dict[tuple[str, int], int], ends: dict[tuple[str, int], tuple[int, int]]
) -> int:
    """Messages a group has not consumed on the partitions it has committed offsets for
    (an offset below the log's start counts from the start)."""
    behind = 0
    for tp, offset in committed.items():
        low, high = ends.get(tp, (0, 0))
        behind += max(high - max(offset, low), 0)
    return behind


def consumer_groups(kafka: str) -> dict[str, dict[str, Any]]:
    """Each role's group: its state, member count and lag (committed offsets vs. the ends)."""
    admin = AdminClient({"bootstrap.servers": kafka})
    found: dict[str, dict[str, Any]] = {}
    for role, group in CONSUMER_GROUPS.items():
        entry: dict[str, Any] = {"group": group}
        try:
            described = admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)
            description = described[group].result()
            entry["state"] = str(description.state.name).lower()
            entry["members"] = len(description.members)
            listed = admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=TIMEOUT_S
            )
            partitions: list[TopicPartition] = listed[group].result().topic_partitions or []
            committed = {(p.topic, p.partition): p.offset for p in partitions if p.offset >= 0}
            ends = end_offsets(kafka, sorted({t for t, _ in committed}))
            entry["lag"] = group_lag(committed, ends)
        except Exception as exc:  # a report: one failing group does not hide the others
            entry["error"] = f"{type(exc).__name__}: {exc}"
        found[role] = entry
    return found


def dead_letters(kafka: str) -> int:
    return sum(high - low for low, high in end_offsets(kafka, [DEADLETTER]).values())


async def _timed(probe: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), TIMEOUT_S)
    except Exception as exc:  # every failure is reported, never raised
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 1)}


async def services(
    state: ApiState, names: tuple[str, ...] | None = None
) -> dict[str, dict[str, Any]]:
    """Each service's probe result (``status`` ok or down, with ``ms`` or ``error``): every
    service, or those ``names`` (what ``/readyz`` requires)."""
    settings = state.settings

    async def postgres() -> None:
        async with state.db.connection(timeout=2) as conn:
            await conn.execute("select 1")

    async def kafka() -> None:
        if not await asyncio.to_thread(state.producer.ready):
            raise RuntimeError("no broker in metadata")

    async def registry() -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            (await client.get(f"{settings.registry}/subjects")).raise_for_status()

    async def redis() -> None:
        await state.redis.ping()

    async def s3() -> None:
        await asyncio.to_thread(state.s3.bucket_exists, settings.s3_bucket)

    async def search() -> None:
        if state.search.unavailable:
            raise RuntimeError(state.search.unavailable)

    probes = {
        "kafka": kafka,
        "postgres": postgres,
        "registry": registry,
        "redis": redis,
        "s3": s3,
        "search": search,
    }
    chosen = [n for n in probes if names is None or n in names]
    results = await asyncio.gather(*(_timed(probes[n]) for n in chosen))
    return dict(zip(chosen, results, strict=True))


class Probes:
    """One API's shared, cached probes (one per app: ``probes(request)``)."""

    def __init__(self, state: ApiState) -> None:
        settings = state.settings
        self.ready = AsyncSingleFlight(lambda: services(state, READINESS), PROBE_MAX_AGE_S)
        self.everything = AsyncSingleFlight(lambda: services(state), PROBE_MAX_AGE_S)
        self.projections = AsyncSingleFlight(
            lambda: projection_states(state.redis), PROBE_MAX_AGE_S
        )
        self.groups = SingleFlight(lambda: consumer_groups(settings.kafka), REPORT_MAX_AGE_S)
        self.dead_letters = SingleFlight(lambda: dead_letters(settings.kafka), REPORT_MAX_AGE_S)
        self.lags = lag_cache(settings.kafka, settings.database, topics_by_projection(settings))

    async def lag(self) -> dict[str, int] | str:
        """Each projection's lag, or why it is not known."""
        return shown(await self.lags.aget(WAIT_S))


def shown(outcome: Outcome[Any] | None) -> Any:
    if outcome is None:
        return "not measured yet"
    return outcome.value if outcome.error is None else outcome.error


def probes(request: Request) -> Probes:
    app: Starlette = request.app
    found: Probes | None = getattr(app.state, "probes", None)
    if found is None:
        found = app.state.probes = Probes(app.state.api)
    return found


async def health(request: Request) -> Response:
    cached = probes(request)
    body: dict[str, Any] = {"services": (await cached.everything.get()).value or {}}
    body["ok"] = all(s["status"] == "ok" for s in body["services"].values())
    lag = await cached.lag()
    body["projection_lag"] = lag if isinstance(lag, dict) else {"error": lag}
    projections = await cached.projections.get()
    body["projections"] = shown(projections)
    groups = await cached.groups.aget(WAIT_S)
    if groups is not None and groups.error is None:
        body["consumer_groups"] = groups.value
    else:
        body["consumer_groups"] = {"error": shown(groups)}
    letters = await cached.dead_letters.aget(WAIT_S)
    body["dead_letters"] = letters.value if letters is not None else None
    if letters is None or letters.error is not None:
        body["dead_letters_error"] = shown(letters)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
