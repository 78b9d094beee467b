"""Issue 17, finding 12, at the API: the tenant's record of its members decides a token's or
session's tenant roles (``api.membership``); the read model's part is in
tests/stack/test_membership.py."""

from __future__ import annotations

import pytest

from api.membership import Memberships, NotAMember, Record, applies_to, effective
from api.principal import PLATFORM_ADMIN, Principal

ADMIN_CLAIM = Principal("rita", "acme", frozenset({"admin"}))


def test_a_recorded_member_acts_with_the_recorded_roles_not_the_claimed() -> None:
    found = effective(ADMIN_CLAIM, Record(frozenset({"viewer"}), managed=True))
    assert found.roles == {"viewer"} and found.subject == "rita"


def test_a_removed_member_of_a_tenant_that_records_members_is_refused() -> None:
    with pytest.raises(NotAMember, match="not a member of tenant acme"):
        effective(ADMIN_CLAIM, Record(None, managed=True))


def test_a_tenant_without_recorded_members_keeps_the_identity_providers_roles() -> None:
    assert effective(ADMIN_CLAIM, Record(None, managed=False)) == ADMIN_CLAIM


def test_a_platform_admin_claim_is_the_platforms_and_is_kept() -> None:
    both = Principal("rita", "acme", frozenset({"admin", PLATFORM_ADMIN}))
    assert not applies_to(both)  # not looked up at all
    found = effective(both, Record(frozenset({"viewer"}), managed=True))
    assert found.roles == {"viewer", PLATFORM_ADMIN}


def test_api_keys_and_tenantless_callers_are_not_looked_up() -> None:
    assert not applies_to(Principal("key:0123456789abcdef", "acme", frozenset(), via="api_key"))
    assert not applies_to(Principal("root", None, frozenset({PLATFORM_ADMIN})))
    assert applies_to(Principal("rita", "acme", frozenset(), via="session"))


def test_records_are_cached_for_their_lifetime_and_bounded() -> None:
    cache = Memberships(ttl_s=60, entries=3)
    record = Record(frozenset({"viewer"}), managed=True)
    cache.store("acme", "rita", record)
    assert cache.cached("acme", "rita") is record
    for n in range(10):
        cache.store("acme", f"u{n}", record)
    assert len(cache) == 3 and cache.cached("acme", "rita") is None
    expired = Memberships(ttl_s=0)
    expired.store("acme", "rita", record)
    assert expired.cached("acme", "rita") is None
