"""Tokens from the local OIDC provider, obtained the way a browser would: authorization code
with PKCE through its login form. Backs `aion token`, `aion up`'s demo and the tests.

Only the local provider (mock-oauth2-server) has a form that accepts any user and claims; with
a real provider, get a token from its own tools.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from aion.settings import Settings
from api.principal import PLATFORM_ADMIN, TENANT_ROLES

REDIRECT_URI = "http://127.0.0.1/aion-token-callback"  # never fetched: the code is read off it


class TokenError(Exception):
    """The provider refused or could not be reached; the message says what to do."""


@dataclass(frozen=True)
class Tokens:
    access_token: str
    id_token: str
    expires_in: int


def pkce_pair() -> tuple[str, str]:
    """A code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_roles(roles: list[str], tenant: str | None) -> None:
    known = {*TENANT_ROLES, PLATFORM_ADMIN}
    unknown = [r for r in roles if r not in known]
    if unknown:
        raise TokenError(f"unknown role {unknown[0]!r}: use one of {', '.join(sorted(known))}")
    if tenant is None and PLATFORM_ADMIN not in roles:
        raise TokenError("a token without --tenant is only for a platform admin")


def login(
    settings: Settings,
    user: str,
    tenant: str | None,
    roles: list[str],
    extra_claims: dict[str, Any] | None = None,
    client_id: str | None = None,
) -> Tokens:
    """Sign ``user`` in at the local provider and exchange the code for tokens."""
    check_roles(roles, tenant)
    claims: dict[str, Any] = {"roles": roles, **(extra_claims or {})}
    if tenant is not None:
        claims[settings.oidc_tenant_claim] = tenant
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id or settings.oidc_client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    issuer = settings.issuer.rstrip("/")
    try:
        with httpx.Client(timeout=15) as client:
            signed = client.post(
                f"{issuer}/authorize",
                params=params,
                data={"username": user, "claims": json.dumps(claims)},
            )
            location = signed.headers.get("location", "")
            query = parse_qs(urlparse(location).query)
            if signed.status_code != 302 or "code" not in query:
                raise TokenError(
                    f"the provider at {issuer} did not sign {user} in (HTTP "
                    f"{signed.status_code}); is it the local provider? `aion stack status`"
                )
            if query.get("state") != [params["state"]]:
                raise TokenError("the provider answered with another state: refusing the code")
            exchanged = client.post(
                f"{issuer}/token",
                data={
                    "grant_type": "authorization_code",
                    "code": query["code"][0],
                    "redirect_uri": REDIRECT_URI,
                    "client_id": params["client_id"],
                    "code_verifier": verifier,
                },
            )
    except httpx.HTTPError as exc:
        raise TokenError(
            f"cannot reach the OIDC provider at {issuer} ({exc}); start it with `aion stack up`"
        ) from exc
    if exchanged.status_code != 200:
        raise TokenError(f"the provider refused the code: {exchanged.text[:200]}")
    body = exchanged.json()
    return Tokens(body["access_token"], body["id_token"], int(body.get("expires_in", 0)))
