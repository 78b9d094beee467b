"""The Starlette application: routes, error handling, metrics, and the lifespan of clients."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import Histogram
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aion.settings import Settings
from api import (
    api_keys,
    artifacts,
    audit,
    batch,
    command_routes,
    commands,
    health,
    live,
    login,
    modules,
    policy_simulate,
    queries,
    search,
    service_health,
    tenant_list,
    tenants,
)
from api.access import AccessMiddleware
from api.authorization import schema_actions
from api.console import routes as console
from api.denials import DenialLog
from api.openapi import document, is_public
from api.operations import OPERATIONS
from api.problems import Problem, problem_response
from api.state import ApiState

REQUEST_SECONDS = Histogram(
    "aion_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class MetricsMiddleware:
    """Latency to the response's first byte, by method, route template and status (pure ASGI:
    BaseHTTPMiddleware's task group per request costs more than the endpoints it times)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                REQUEST_SECONDS.labels(
                    scope["method"], getattr(route, "path", "unmatched"), str(message["status"])
                ).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, timed)


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request.url.path)


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path, for a 405's ``Allow`` (RFC 9110 15.5.6).

    Starlette's own header names only the first route whose path matched, and a path's methods
    are often spread over several routes (a list's GET, its command's POST)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
        detail = f"{request.method} is not served here; the methods are {headers['Allow']}"
    problem = Problem(exc.status_code, code, str(exc.detail), detail, headers=headers)
    return problem_response(problem, request.url.path)


async def openapi(request: Request) -> Response:
    return JSONResponse(document(OPERATIONS))


def create_app(settings: Settings) -> Starlette:
    health.register_lag_metric(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.api = await ApiState.open(settings)
        app.state.denials = DenialLog(app.state.api)  # counts 403s for the audit log
        app.state.denials.start()
        # What start-up made (modules, the embedding model, clients) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it all
        # (each one stalled every request in flight for tens of ms; decision 43).
        gc.freeze()
        try:
            yield
        finally:
            await app.state.denials.stop()
            await app.state.api.close()

    routes = [
        *batch.routes(),
        *command_routes.routes(),
        *api_keys.routes(),
        *login.routes(),
        Route("/v1/tenants", tenant_list.list_tenants, methods=["GET"]),
        Route("/v1/tenants/{tenant}", tenants.get_tenant, methods=["GET"]),
        Route(policy_simulate.PATH, policy_simulate.simulate, methods=["POST"]),
        Route("/v1/tenants/{tenant}/users", tenants.list_users, methods=["GET"]),
        Route("/v1/tenants/{tenant}/modules", modules.upload_module, methods=["POST"]),
        Route("/v1/tenants/{tenant}/modules/{digest}", modules.get_module, methods=["GET"]),
        Route("/v1/commands/{command_id}", commands.get_command, methods=["GET"]),
        *queries.routes(),
        Route(artifacts.PATH, artifacts.download_artifact, methods=["GET"]),
        Route(search.PATH, search.search, methods=["GET"]),
        Route(live.EVENTS_PATH, live.task_events, methods=["GET"]),
        Route(live.COUNTERS_PATH, live.counters, methods=["GET"]),
        Route(live.STATUS_PATH, live.task_status, methods=["GET"]),
        Route(audit.PATH, audit.list_audit, methods=["GET"]),
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Route("/metrics", health.metrics),
        Route("/openapi.json", openapi),
        Route(service_health.PATH, service_health.health, methods=["GET"]),
        *console.routes(),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(MetricsMiddleware), Middleware(AccessMiddleware)],
        exception_handlers={Problem: on_problem, HTTPException: on_http_error},
    )


def guarded_routes(app: Starlette) -> set[tuple[str, str]]:
    """(method, path template) of every route behind the access gate."""
    found = set()
    for route in app.routes:
        path = str(getattr(route, "path", ""))
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD" and not is_public(path):
                found.add((method, path))
    return found


def cedar_api_actions() -> str:
    """The Cedar schema's API actions, as committed in commands/cedar_api_actions.json."""
    actions = schema_actions(guarded_routes(create_app(Settings())))
    return json.dumps(actions, indent=2, sort_keys=True) + "\n"
