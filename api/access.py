"""The gate every API request passes: authenticate, rate-limit, authorize (in that order).

An ASGI middleware, so that streamed responses (SSE, downloads) pass through untouched. A
refused request reaches no endpoint, so nothing is produced for it; a 403 is counted in the
audit log (``aion.audit.AccessDenied``, aggregated by api/denials.py). Public paths: health,
metrics, the OpenAPI document and the sign-in flow.

Rate limits are taken from the caller's own buckets (its own and its tenant's) before Cedar
decides, and from the bucket of the tenant the path names only once the request is allowed:
a caller refused on another tenant's path pays for its attempts itself and never drains that
tenant's bucket (issue 17, finding 3).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping

from prometheus_client import Counter
from starlette.requests import HTTPConnection
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aion.settings import Settings
from api import audit_events
from api.authorization import Action, action_for, decide
from api.credentials import Unauthenticated, authenticate
from api.denials import DenialLog, Refusal
from api.openapi import is_public
from api.principal import Principal
from api.problems import Problem, problem_response
from api.rate_limits import Bucket, Verdict
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


def tenant_bucket(s: Settings, tenant: str) -> Bucket:
    return Bucket(f"tenant:{tenant}", s.rate_tenant_per_s, s.rate_tenant_burst)


def own_buckets(s: Settings, principal: Principal) -> list[Bucket]:
    """Taken before authorization: the caller's bucket and its own tenant's (none for a token
    that names no tenant), so that whatever a caller sends, allowed or not, is paid for by the
    caller and its tenant."""
    caller = Bucket(
        principal.rate_key,
        principal.rate_per_s or s.rate_caller_per_s,
        principal.burst or s.rate_caller_burst,
    )
    if principal.tenant is None:
        return [caller]
    return [tenant_bucket(s, principal.tenant), caller]


def addressed_bucket(s: Settings, principal: Principal, tenant: str | None) -> Bucket | None:
    """Taken once authorized: the bucket of the tenant the request addresses when it is not the
    caller's own (a platform admin acting on a tenant; a platform route: ``_platform``), so
    that a tenant's bucket still bounds all it receives, from those allowed to send it."""
    addressed = tenant or principal.tenant or audit_events.PLATFORM
    if addressed == principal.tenant:
        return None
    return tenant_bucket(s, addressed)


def tightest(first: Verdict, second: Verdict) -> Verdict:
    """The verdict whose bucket has fewer tokens left: the one the headers describe."""
    return second if second.remaining < first.remaining else first


def rate_limited(verdict: Verdict) -> Problem:
    return Problem(
        429,
        "rate-limited",
        "Too many requests",
        f"the {verdict.bucket.key.split(':')[0]} rate limit is "
        f"{verdict.bucket.rate_per_s:g}/s with a burst of {verdict.bucket.burst}; "
        f"retry after {verdict.retry_after_s} s",
        headers=verdict.headers(),
    )


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
        verdict = await state.limiter.take(own_buckets(state.settings, principal))
        if not verdict.allowed:
            raise rate_limited(verdict)
        await self.authorize(state, scope, principal, action, tenant, verdict.headers())
        addressed = addressed_bucket(state.settings, principal, tenant)
        if addressed is not None:
            second = await state.limiter.take([addressed])
            if not second.allowed:
                raise rate_limited(second)
            verdict = tightest(verdict, second)
        return principal, verdict.headers()

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
        refusal = Refusal(
            tenant or principal.tenant or audit_events.PLATFORM,
            principal.subject,
            principal.via,
            tuple(sorted(principal.roles)),
            scope["method"],
            scope["path"],
            action.id,
            decision.reason(),
            403,
        )
        denials: DenialLog = scope["app"].state.denials
        try:
            await denials.refused(principal, refusal)
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
