"""The gate every API request passes: authenticate, rate-limit, authorize (in that order).

An ASGI middleware, so that streamed responses (SSE, downloads) pass through untouched. A
refused request reaches no endpoint, so nothing is produced for it; a 403 is recorded in the
audit log (``aion.audit.AccessDenied``). Public paths: health, metrics, the OpenAPI document
and the sign-in flow.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping

from prometheus_client import Counter
from starlette.requests import HTTPConnection
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import audit_events
from api.authorization import Action, action_for, decide
from api.credentials import Unauthenticated, authenticate
from api.openapi import is_public
from api.principal import Principal
from api.problems import Problem, problem_response
from api.rate_limits import Bucket
from api.state import ApiState

log = logging.getLogger("aion.api.access")

AUTH_FAILURES = Counter(
    "aion_auth_failures_total", "Requests refused before any endpoint ran", ["status", "reason"]
)


ROUTE_CACHE_SIZE = 4096
_routes: OrderedDict[tuple[str, str], tuple[str, dict[str, str]] | None] = OrderedDict()


def matched_route(scope: Scope) -> tuple[str, dict[str, str]] | None:
    """The path template and parameters of the route that will handle the request (the same
    method and path always match the same route, so the answer is remembered)."""
    key = (scope["method"], scope["path"])
    if key in _routes:
        _routes.move_to_end(key)
        return _routes[key]
    found = None
    for route in scope["app"].router.routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            found = str(route.path), dict(child.get("path_params", {}))
            break
    _routes[key] = found
    if len(_routes) > ROUTE_CACHE_SIZE:
        _routes.popitem(last=False)
    return found


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-aion-console"


def csrf_refusal(method: str, principal: Principal, headers: Mapping[str, str]) -> Problem | None:
    """A state-changing request authenticated by the session cookie must carry
    ``X-Aion-Console: 1``: a cross-site page cannot add a custom header without a CORS
    preflight, which this API never grants (SameSite=Lax is the first defence; this one also
    holds against a sibling site on the same host, which Lax counts as same-site)."""
    if principal.via != "session" or method in SAFE_METHODS:
        return None
    if headers.get(CSRF_HEADER) == "1":
        return None
    return Problem(
        403,
        "csrf",
        "Cross-site request refused",
        "a state-changing request signed in by the session cookie needs the header "
        "X-Aion-Console: 1 (the console sends it; other clients use a token or an API key)",
        field="X-Aion-Console",
    )


def buckets(state: ApiState, principal: Principal, tenant: str | None) -> list[Bucket]:
    s = state.settings
    home = tenant or principal.tenant or audit_events.PLATFORM
    return [
        Bucket(f"tenant:{home}", s.rate_tenant_per_s, s.rate_tenant_burst),
        Bucket(
            principal.rate_key,
            principal.rate_per_s or s.rate_caller_per_s,
            principal.burst or s.rate_caller_burst,
        ),
    ]


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        state: ApiState = scope["app"].state.api
        try:
            principal, headers = await self.admit(state, scope)
        except Problem as problem:
            # 401s by what was wrong with the credential (expired, signature...), else the code
            reason = str(problem.extra.get("reason") or problem.code)
            AUTH_FAILURES.labels(str(problem.status), reason).inc()
            await problem_response(problem, scope["path"])(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def admit(self, state: ApiState, scope: Scope) -> tuple[Principal, dict[str, str]]:
        try:
            principal = await authenticate(state, HTTPConnection(scope))
        except Unauthenticated as exc:
            description = exc.detail.replace('"', "'")
            raise Problem(
                401,
                "unauthenticated",
                "Authentication required",
                exc.detail,
                reason=exc.reason,
                headers={
                    "WWW-Authenticate": f'Bearer realm="aion", error="invalid_token", '
                    f'error_description="{description}"'
                },
            ) from exc
        refused = csrf_refusal(scope["method"], principal, HTTPConnection(scope).headers)
        if refused is not None:
            raise refused
        route = matched_route(scope)
        if route is None:
            return principal, {}  # the router answers 404 or 405
        template, params = route
        try:
            action = action_for(scope["method"], template)
        except KeyError:
            log.error("route %s %s has no access group: refused", scope["method"], template)
            raise Problem(403, "forbidden", "Forbidden", "this route has no access rule") from None
        tenant = params.get("tenant") if action.tenant_param else None
        verdict = await state.limiter.take(buckets(state, principal, tenant))
        headers = verdict.headers()
        if not verdict.allowed:
            raise Problem(
                429,
                "rate-limited",
                "Too many requests",
                f"the {verdict.bucket.key.split(':')[0]} rate limit is "
                f"{verdict.bucket.rate_per_s:g}/s with a burst of {verdict.bucket.burst}; "
                f"retry after {verdict.retry_after_s} s",
                headers=headers,
            )
        await self.authorize(state, scope, principal, action, tenant, headers)
        return principal, headers

    async def authorize(
        self,
        state: ApiState,
        scope: Scope,
        principal: Principal,
        action: Action,
        tenant: str | None,
        headers: dict[str, str],
    ) -> None:
        policies: tuple[tuple[str, str], ...] = ()
        if tenant is not None:
            policies = await tenant_policies(state, tenant)
        decision = decide(principal, action, tenant, policies)
        if decision.allowed:
            return
        try:
            await audit_events.access_denied(
                state,
                principal,
                tenant or principal.tenant or audit_events.PLATFORM,
                action.id,
                scope["method"],
                scope["path"],
                decision.reason(),
                403,
            )
        except Exception:  # the refusal stands; the audit gap is logged loudly
            log.exception("could not record the access denial of %s", principal.subject)
        raise Problem(
            403,
            "forbidden",
            "Forbidden",
            decision.reason(),
            policies=list(decision.policy_ids),
            headers=headers,
        )


async def tenant_policies(state: ApiState, tenant: str) -> tuple[tuple[str, str], ...]:
    cached = state.tenant_policies.cached(tenant)
    if cached is not None:
        return cached
    async with state.db.connection() as conn, conn.cursor() as cur:
        await cur.execute(
            "select policy_id, cedar from policies where tenant_id = %s and status = 'active'",
            (tenant,),
        )
        rows = await cur.fetchall()
    return state.tenant_policies.store(tenant, ((str(r[0]), str(r[1])) for r in rows))
