"""Who is calling: the identity the API authenticated, whatever the credential was."""

from __future__ import annotations

from dataclasses import dataclass, field

PLATFORM_ADMIN = "platform-admin"
TENANT_ROLES = ("admin", "operator", "developer", "viewer")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    ``subject`` is the token's ``sub`` (or ``key:<key id>`` for an API key) and becomes the
    ``actor`` of every command the caller sends; ``tenant`` is None for a platform admin whose
    token names no tenant.
    """

    subject: str
    tenant: str | None
    roles: frozenset[str] = field(default_factory=frozenset)
    via: str = "token"  # "token", "api_key" or "session"
    key_id: str | None = None  # the API key's id, or the token's jti when it has one
    rate_per_s: float | None = None  # an API key's own rate limit (None: the default)
    burst: int | None = None

    @property
    def platform_admin(self) -> bool:
        return PLATFORM_ADMIN in self.roles

    @property
    def rate_key(self) -> str:
        """The caller's own rate bucket: one per API key, one per token subject."""
        return f"key:{self.key_id}" if self.via == "api_key" else f"sub:{self.subject}"
