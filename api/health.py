"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aion import metrics as role_metrics
from aion.settings import Settings
from api.state import ApiState
from projections.lag import projection_lags


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when Kafka, Postgres and the schema registry answer."""
    state: ApiState = request.app.state.api
    checks: dict[str, str] = {}

    async def check(name: str, probe: object) -> None:
        try:
            await probe  # type: ignore[misc]
            checks[name] = "ok"
        except Exception as exc:  # a readiness probe reports every failure, it never raises
            checks[name] = f"{type(exc).__name__}: {exc}"

    async def postgres() -> None:
        async with state.db.connection(timeout=2) as conn:
            await conn.execute("select 1")

    async def kafka() -> None:
        if not await asyncio.to_thread(state.producer.ready):
            raise RuntimeError("no broker in metadata")

    async def registry() -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            (await client.get(f"{state.settings.registry}/subjects")).raise_for_status()

    await asyncio.gather(
        check("postgres", postgres()), check("kafka", kafka()), check("registry", registry())
    )
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"ready": ready, "checks": checks}
    if ready:
        # Informational: a projection behind is still ready (reads wait with ?after_command=).
        try:
            body["projection_lag"] = await asyncio.to_thread(projection_lag, state.settings)
        except Exception as exc:  # the lag is a report, never a reason to fail readiness
            body["projection_lag"] = f"{type(exc).__name__}: {exc}"
    return JSONResponse(body, status_code=200 if ready else 503)


def projection_lag(settings: Settings) -> dict[str, int]:
    from projections import service  # which projections run, and the topics they read

    return projection_lags(
        settings.kafka, settings.database, service.topics_by_projection(settings)
    )


def register_lag_metric(settings: Settings) -> None:
    """``aion_projection_lag_messages`` on this process's /metrics (defined in aion.metrics)."""
    role_metrics.register_lag_metric(settings)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
