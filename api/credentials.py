"""Authentication: a request's credential becomes a Principal, or a 401 saying why not.

Three credentials are accepted:

* ``Authorization: Bearer <JWT>``: an OIDC access token of the configured issuer;
* ``Authorization: Bearer aion_<key id>_<secret>`` or ``X-API-Key: aion_...``: an API key,
  checked against the SHA-256 in the api_keys read model (revoked or expired: refused);
* the ``aion_session`` cookie of a browser that signed in through ``/auth/login``.

A token's or session's tenant roles are then checked against the tenant's record of its
members (``api.membership``): a removed member is refused, a changed role counts, within
``api.membership.TTL_S`` seconds of the change reaching the read model.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row
from starlette.requests import HTTPConnection

from api.membership import NotAMember, checked
from api.principal import Principal
from api.state import ApiState
from api.tokens import InvalidToken

SESSION_COOKIE = "aion_session"
API_KEY = re.compile(r"aion_([0-9a-f]{16})_([A-Za-z0-9_-]{20,200})")


class Unauthenticated(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def principal_from_claims(state: ApiState, claims: dict[str, Any], via: str) -> Principal:
    settings = state.settings
    tenant = claims.get(settings.oidc_tenant_claim)
    roles = claims.get(settings.oidc_roles_claim) or []
    if isinstance(roles, str):
        roles = roles.split()
    if tenant is not None and not isinstance(tenant, str):
        raise Unauthenticated("claims", f"the {settings.oidc_tenant_claim} claim must be a string")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthenticated("claims", f"the {settings.oidc_roles_claim} claim must list strings")
    jti = claims.get("jti")
    return Principal(
        subject=str(claims["sub"]),
        tenant=tenant,
        roles=frozenset(roles),
        via=via,
        key_id=str(jti) if jti is not None else None,
    )


async def api_key_principal(state: ApiState, presented: str) -> Principal:
    match = API_KEY.fullmatch(presented)
    if match is None:
        raise Unauthenticated("malformed", "an API key looks like aion_<16 hex>_<secret>")
    key_id, secret = match.groups()
    async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "select tenant_id, roles, secret_sha256, status, expires_at, rate_per_s, burst"
            " from api_keys"
            " where key_id = %s",
            (key_id,),
        )
        row = await cur.fetchone()
    digest = hashlib.sha256(secret.encode()).hexdigest()
    # Compared even for an unknown key, so that timing does not tell which key ids exist.
    expected = row["secret_sha256"] if row else "0" * 64
    if not hmac.compare_digest(digest, expected) or row is None:
        raise Unauthenticated("unknown_key", "the API key is not valid")
    if row["status"] != "active":
        raise Unauthenticated("revoked", "the API key was revoked")
    if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
        raise Unauthenticated("expired", "the API key has expired")
    return Principal(
        subject=f"key:{key_id}",
        tenant=row["tenant_id"],
        roles=frozenset(row["roles"]),
        via="api_key",
        key_id=key_id,
        rate_per_s=row["rate_per_s"],
        burst=row["burst"],
    )


async def session_principal(state: ApiState, session_id: str) -> Principal | None:
    raw = await state.redis.get(f"aion:session:{session_id}")
    if raw is None:
        return None
    data = json.loads(raw)
    return Principal(
        subject=data["subject"],
        tenant=data["tenant"],
        roles=frozenset(data["roles"]),
        via="session",
        key_id=session_id[:16],
    )


async def authenticate(state: ApiState, conn: HTTPConnection) -> Principal:
    """The caller, with the roles its tenant records for it (401 for a removed member)."""
    principal = await credential_principal(state, conn)
    try:
        return await checked(state.db, principal)
    except NotAMember as exc:
        raise Unauthenticated("not_member", str(exc)) from exc


async def credential_principal(state: ApiState, conn: HTTPConnection) -> Principal:
    """Who the credential says the caller is."""
    header = conn.headers.get("authorization")
    api_key = conn.headers.get("x-api-key")
    if api_key is not None:
        return await api_key_principal(state, api_key.strip())
    if header is not None:
        scheme, _, credential = header.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated("malformed", "use Authorization: Bearer <token>")
        if credential.startswith("aion_"):
            return await api_key_principal(state, credential)
        try:
            claims = await state.tokens.verify(credential)
        except InvalidToken as exc:
            raise Unauthenticated(exc.reason, exc.detail) from exc
        return principal_from_claims(state, claims, "token")
    session_id = conn.cookies.get(SESSION_COOKIE)
    if session_id:
        found = await session_principal(state, session_id)
        if found is not None:
            return found
        raise Unauthenticated("session", "the session has ended; sign in again at /auth/login")
    raise Unauthenticated(
        "missing", "send a bearer token (`aion token`), an API key, or sign in at /auth/login"
    )
