"""Browser sign-in: OIDC authorization code with PKCE, then a server-side session cookie.

``GET /auth/login?return_to=/console`` sends the browser to the issuer with a fresh state,
nonce and code challenge (kept in Redis for ten minutes) and binds that sign-in to the browser:
the ``aion_login`` cookie (HttpOnly, SameSite=Lax, Secure over https, path /auth/) holds a random
secret whose hash the sign-in keeps. ``GET /auth/callback`` takes the state once, refuses it
unless the browser's cookie matches (login CSRF: a callback URL made in the attacker's browser
must not sign the victim in as the attacker), exchanges the code with its verifier, verifies the
ID token (signature, issuer, audience, nonce), and sets ``aion_session`` (HttpOnly,
SameSite=Lax) naming a session in Redis. The browser never holds a token. ``POST /auth/logout``
ends the session; ``GET /auth/session`` says who is signed in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from aion.local_tokens import pkce_pair
from api import audit_events
from api.console.routes import PREFIX as CONSOLE_PREFIX
from api.credentials import SESSION_COOKIE, principal_from_claims, session_principal
from api.principal import Principal
from api.problems import Problem
from api.state import ApiState
from api.tokens import InvalidToken

LOGIN_TTL_S = 600
LOGIN_COOKIE = "aion_login"  # the browser's binding secret for the sign-ins it started
LOGIN_COOKIE_PATH = "/auth/"  # sent to /auth/callback only, never with API calls
BINDING_CHARS = 43  # token_urlsafe(32)
CONSOLE_HOME = CONSOLE_PREFIX + "/"


def _binding(request: Request) -> str:
    """The browser's binding secret: the one it holds, so that sign-ins started in two tabs
    both complete, else a fresh one."""
    held = request.cookies.get(LOGIN_COOKIE, "")
    if len(held) == BINDING_CHARS and held.replace("-", "").replace("_", "").isalnum():
        return held
    return secrets.token_urlsafe(32)


def _digest(binding: str) -> str:
    return hashlib.sha256(binding.encode()).hexdigest()


def _bound_here(request: Request, remembered: dict[str, Any]) -> bool:
    """Whether this browser holds the secret the sign-in was bound to (constant time)."""
    held = request.cookies.get(LOGIN_COOKIE, "")
    expected = str(remembered.get("binding", ""))
    return bool(held) and hmac.compare_digest(_digest(held), expected)


def _return_to(raw: str | None) -> str:
    """Only a path on this server: never an open redirect to another site."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    return raw


def _callback_url(request: Request) -> str:
    return str(request.url_for("auth_callback"))


async def login(request: Request) -> Response:
    state: ApiState = request.app.state.api
    discovery = await _discovery(state)
    verifier, challenge = pkce_pair()
    flow = secrets.token_urlsafe(24)
    nonce = secrets.token_urlsafe(16)
    binding = _binding(request)
    remembered = {
        "verifier": verifier,
        "nonce": nonce,
        "return_to": _return_to(request.query_params.get("return_to")),
        "redirect_uri": _callback_url(request),
        "binding": _digest(binding),
    }
    await state.redis.set(f"aion:login:{flow}", json.dumps(remembered), ex=LOGIN_TTL_S)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": state.settings.oidc_client_id,
            "redirect_uri": remembered["redirect_uri"],
            "scope": "openid",
            "state": flow,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    response = RedirectResponse(f"{discovery['authorization_endpoint']}?{query}", status_code=302)
    response.set_cookie(
        LOGIN_COOKIE,
        binding,
        max_age=LOGIN_TTL_S,
        httponly=True,
        samesite="lax",  # sent on the issuer's top-level redirect back to the callback
        secure=request.url.scheme == "https",
        path=LOGIN_COOKIE_PATH,
    )
    return response


async def _discovery(state: ApiState) -> dict[str, Any]:
    """The issuer's endpoints, or a 502 saying why they cannot be had."""
    try:
        return await state.tokens.discovery()
    except (httpx.HTTPError, ValueError, InvalidToken) as exc:
        raise Problem(
            502, "issuer-unavailable", "The issuer cannot be reached", f"discovery: {exc}"
        ) from exc


async def callback(request: Request) -> Response:
    state: ApiState = request.app.state.api
    flow = request.query_params.get("state", "")
    code = request.query_params.get("code")
    raw = await state.redis.getdel(f"aion:login:{flow}") if flow else None
    if raw is None:
        raise Problem(
            400,
            "invalid-login",
            "Unknown sign-in",
            "this sign-in was not started here or has expired; start again at /auth/login",
            field="state",
        )
    remembered: dict[str, Any] = json.loads(raw)
    if not _bound_here(request, remembered):
        raise Problem(
            400,
            "invalid-login",
            "Sign-in started elsewhere",
            "this sign-in was not started in this browser (no matching aion_login cookie); "
            "start again at /auth/login",
            field="state",
        )
    if not code:
        error = request.query_params.get("error", "no code")
        raise Problem(
            400, "invalid-login", "Sign-in failed", f"the issuer said: {error}", field="code"
        )
    claims = await _exchange(state, code, remembered)
    principal = principal_from_claims(state, claims, "session")
    session_id = secrets.token_urlsafe(32)
    session = {
        "subject": principal.subject,
        "tenant": principal.tenant,
        "roles": sorted(principal.roles),
    }
    ttl = state.settings.session_ttl_s
    await state.redis.set(f"aion:session:{session_id}", json.dumps(session), ex=ttl)
    await audit_events.signed_in(state, principal, "oidc", session_id[:16])
    response = RedirectResponse(remembered["return_to"], status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=ttl,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def _exchange(state: ApiState, code: str, remembered: dict[str, Any]) -> dict[str, Any]:
    discovery = await _discovery(state)
    try:
        answer = await state.tokens.http.post(
            str(discovery["token_endpoint"]),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": remembered["redirect_uri"],
                "client_id": state.settings.oidc_client_id,
                "code_verifier": remembered["verifier"],
            },
        )
    except httpx.HTTPError as exc:
        raise Problem(502, "issuer-unavailable", "The issuer cannot be reached", str(exc)) from exc
    if answer.status_code != 200:
        raise Problem(
            400, "invalid-login", "The issuer refused the code", answer.text[:300], field="code"
        )
    try:
        id_token = str(answer.json()["id_token"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Problem(
            502, "issuer-unavailable", "The issuer answered no ID token", answer.text[:300]
        ) from exc
    try:
        return await state.tokens.verify(
            id_token,
            audiences=[state.settings.oidc_client_id, state.settings.oidc_audience],
            nonce=remembered["nonce"],
        )
    except InvalidToken as exc:
        raise Problem(401, "unauthenticated", "The ID token is not acceptable", exc.detail) from exc


async def _current(request: Request) -> tuple[str, Principal] | None:
    state: ApiState = request.app.state.api
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    principal = await session_principal(state, session_id)
    return None if principal is None else (session_id, principal)


async def logout(request: Request) -> Response:
    state: ApiState = request.app.state.api
    current = await _current(request)
    if current is not None:
        session_id, principal = current
        await state.redis.delete(f"aion:session:{session_id}")
        await audit_events.signed_out(state, principal, session_id[:16])
    # To a page that exists (not /): the console, which offers to sign in again.
    response = RedirectResponse(CONSOLE_HOME, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def session(request: Request) -> Response:
    current = await _current(request)
    if current is None:
        raise Problem(401, "unauthenticated", "Not signed in", "sign in at /auth/login")
    _, principal = current
    return JSONResponse(
        {"subject": principal.subject, "tenant": principal.tenant, "roles": sorted(principal.roles)}
    )


def routes() -> list[Route]:
    return [
        Route("/auth/login", login, methods=["GET"]),
        Route("/auth/callback", callback, methods=["GET"], name="auth_callback"),
        Route("/auth/logout", logout, methods=["POST"]),
        Route("/auth/session", session, methods=["GET"]),
    ]
