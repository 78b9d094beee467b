"""Tenant membership at the API: a removed member's token or session stops working, and a
changed role takes effect, within a bounded time (issue 17, finding 12).

A tenant records its members with AddUser, AssignRole and RemoveUser (the tenant aggregate,
projected into ``tenant_users``). Once it records any, that record is the tenant's word on who
may act for it and with which roles:

* a recorded member acts with the recorded roles, whatever its token's roles claim says (a
  ``platform-admin`` claim is the platform's, not the tenant's, and is kept);
* a token or session of anyone else for that tenant is refused (401 ``not_member``).

A tenant that records no member leaves its members to the identity provider: the token's
claims stand, as before. A tenant cannot go back from recorded to unrecorded members (the
decider refuses to remove the last one), so a removed user cannot return by emptying the list.

Each answer is cached per (tenant, subject) for ``TTL_S`` seconds, so a removal or a role
change reaches every token and session at most ``TTL_S`` after the projector records it.
API keys are not looked up here: their own read model is checked on every request, and a
revoked key is refused at once. Platform admins are not tenant members and are not looked up.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from psycopg_pool import AsyncConnectionPool

from api.principal import PLATFORM_ADMIN, Principal

TTL_S = 5.0
ENTRIES = 10_000  # (tenant, subject) pairs remembered; the least recently fetched leave first

QUERY = (
    "select (select roles from tenant_users where tenant_id = %(t)s and user_id = %(u)s),"
    " exists (select 1 from tenant_users where tenant_id = %(t)s)"
)


class NotAMember(Exception):
    """The tenant records its members, and the caller is not (or no longer) one of them."""


@dataclass(frozen=True)
class Record:
    roles: frozenset[str] | None  # the caller's recorded roles; None: not recorded
    managed: bool  # the tenant records members


def applies_to(principal: Principal) -> bool:
    """Tokens and sessions of a tenant; not API keys (their own read model decides), not
    platform admins (the platform's, not a tenant's)."""
    return (
        principal.tenant is not None
        and principal.via != "api_key"
        and not (principal.platform_admin)
    )


def effective(principal: Principal, record: Record) -> Principal:
    """The principal as the tenant's record says it is; NotAMember when the tenant records
    its members and the caller is not one of them."""
    if record.roles is not None:
        kept = principal.roles & {PLATFORM_ADMIN}
        return replace(principal, roles=frozenset(record.roles) | kept)
    if record.managed:
        raise NotAMember(
            f"{principal.subject} is not a member of tenant {principal.tenant} (the tenant "
            "records its members; ask its admin)"
        )
    return principal


class Memberships:
    """Records fetched from the read model, each kept ``ttl_s`` seconds (bounded LRU)."""

    def __init__(self, ttl_s: float = TTL_S, entries: int = ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.entries = entries
        self._cache: OrderedDict[tuple[str, str], tuple[float, Record]] = OrderedDict()

    def cached(self, tenant: str, subject: str) -> Record | None:
        hit = self._cache.get((tenant, subject))
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def store(self, tenant: str, subject: str, record: Record) -> Record:
        self._cache[(tenant, subject)] = (time.monotonic(), record)
        self._cache.move_to_end((tenant, subject))
        while len(self._cache) > self.entries:
            self._cache.popitem(last=False)
        return record

    async def record(self, db: AsyncConnectionPool[Any], tenant: str, subject: str) -> Record:
        found = self.cached(tenant, subject)
        if found is not None:
            return found
        async with db.connection() as conn, conn.cursor() as cur:
            await cur.execute(QUERY, {"t": tenant, "u": subject})
            row = await cur.fetchone()
        roles, managed = row if row is not None else (None, False)
        record = Record(frozenset(roles) if roles is not None else None, bool(managed))
        return self.store(tenant, subject, record)

    def __len__(self) -> int:
        return len(self._cache)


MEMBERSHIPS = Memberships()


async def checked(db: AsyncConnectionPool[Any], principal: Principal) -> Principal:
    """The principal with the roles its tenant records; raises NotAMember."""
    if not applies_to(principal):
        return principal
    assert principal.tenant is not None
    record = await MEMBERSHIPS.record(db, principal.tenant, principal.subject)
    return effective(principal, record)
