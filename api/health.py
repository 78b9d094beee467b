"""Liveness, readiness and Prometheus metrics.

All three are public, so none of them does its work per request (issue 17, finding 6): they
answer from the shared probes of ``api.service_health.Probes``, computed off the event loop at
most once per a second or two whatever the number of callers, each within a bound of time.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aion import metrics as role_metrics
from aion.settings import Settings
from api import service_health
from api.problems import Problem, problem_response
from api.service_health import READINESS, WAIT_S, probes
from projections.lag import lag_cache
from projections.service import topics_by_projection

__all__ = ["READINESS", "healthz", "metrics", "not_ready", "readyz", "register_lag_metric"]


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when Kafka, Postgres and the schema registry answer, and no projection says it is
    retrying (issue 17, finding 13: a projection that cannot write is named here, with its
    error). A projection behind is still ready (reads wait with ?after_command=); one that
    reports nothing (no projector running, or Redis down) is shown, not a failure."""
    cached = probes(request)
    found = (await cached.ready.get()).value or {}
    checks = {name: "ok" if r["status"] == "ok" else r["error"] for name, r in found.items()}
    states = await cached.projections.get()
    projections = service_health.shown(states)
    for name, state in (states.value or {}).items():
        if state.get("state") == "retrying":
            checks[f"projection {name}"] = (
                f"retrying since {state.get('since')}: {state.get('error')}"
            )
    # Informational: the lag is a report, never a reason to fail readiness.
    extra: dict[str, Any] = {"projection_lag": await cached.lag(), "projections": projections}
    if not all(v == "ok" for v in checks.values()):
        return not_ready(checks, **extra)
    return JSONResponse({"ready": True, "checks": checks, **extra})


def not_ready(checks: dict[str, str], **extra: Any) -> Response:
    """503 as problem+json like every other error, naming the services that failed; ``ready``
    and ``checks`` (and what ``extra`` adds) stay in the body for probes that read them."""
    failed = sorted(name for name, result in checks.items() if result != "ok")
    problem = Problem(
        503,
        "not-ready",
        "Not ready",
        "; ".join(f"{name}: {checks[name]}" for name in failed),
        ready=False,
        checks=checks,
        failed=failed,
        **extra,
    )
    return problem_response(problem, "/readyz")


def register_lag_metric(settings: Settings) -> None:
    """``aion_projection_lag_messages`` on this process's /metrics (defined in aion.metrics),
    from the last measurement: ``metrics`` brings it up to date before it renders, so the
    collector never measures on the event loop."""
    lags = lag_cache(settings.kafka, settings.database, topics_by_projection(settings))
    role_metrics.register_lag_metric(lambda: lags.last.value if lags.last is not None else None)


async def metrics(request: Request) -> Response:
    await probes(request).lags.aget(WAIT_S)  # shared with every scrape and probe going on
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
