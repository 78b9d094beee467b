"""Credentials for the stack tests: tokens from the local OIDC provider, and clients that send
them. Tokens come through the provider's real login flow (authorization code with PKCE)."""

from __future__ import annotations

from functools import cache

import httpx

from aion.local_tokens import login
from aion.settings import Settings
from api.principal import PLATFORM_ADMIN


@cache
def token(user: str, tenant: str | None, roles: tuple[str, ...]) -> str:
    """An access token, fetched once per (user, tenant, roles) per test session."""
    return login(Settings(), user, tenant, list(roles)).access_token


def bearer(user: str, tenant: str | None, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, tenant, tuple(roles))}"}


def admin_headers() -> dict[str, str]:
    """Headers of a platform admin."""
    return bearer("test-admin", None, PLATFORM_ADMIN)


def admin_client(base_url: str, timeout: float = 30) -> httpx.Client:
    """An HTTP client that calls the API as a platform admin."""
    return httpx.Client(base_url=base_url, timeout=timeout, headers=admin_headers())
