"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aion import metrics as role_metrics
from aion.settings import Settings
from api import service_health
from api.problems import Problem, problem_response
from api.state import ApiState
from projections.lag import projection_lags


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


READINESS = ("kafka", "postgres", "registry")  # what serving a command needs


async def readyz(request: Request) -> Response:
    """Ready when Kafka, Postgres and the schema registry answer."""
    state: ApiState = request.app.state.api
    found = await service_health.services(state, READINESS)
    checks = {name: "ok" if r["status"] == "ok" else r["error"] for name, r in found.items()}
    if not all(v == "ok" for v in checks.values()):
        return not_ready(checks)
    body: dict[str, object] = {"ready": True, "checks": checks}
    # Informational: a projection behind is still ready (reads wait with ?after_command=).
    try:
        body["projection_lag"] = await asyncio.to_thread(projection_lag, state.settings)
    except Exception as exc:  # the lag is a report, never a reason to fail readiness
        body["projection_lag"] = f"{type(exc).__name__}: {exc}"
    return JSONResponse(body)


def not_ready(checks: dict[str, str]) -> Response:
    """503 as problem+json like every other error, naming the services that failed; ``ready``
    and ``checks`` stay in the body for probes that read them."""
    failed = sorted(name for name, result in checks.items() if result != "ok")
    problem = Problem(
        503,
        "not-ready",
        "Not ready",
        "; ".join(f"{name}: {checks[name]}" for name in failed),
        ready=False,
        checks=checks,
        failed=failed,
    )
    return problem_response(problem, "/readyz")


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
