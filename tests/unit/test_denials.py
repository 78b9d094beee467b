"""The pure parts of counting refusals (api/denials.py) and of the gate's rate buckets
(api/access.py); the counting itself runs against Redis in tests/stack/test_denial_flood.py."""

from __future__ import annotations

from aion.settings import Settings
from api.access import addressed_bucket, own_buckets, tightest
from api.denials import (
    AGGREGATES_PER_CALLER,
    OVERFLOW_ACTION,
    Refusal,
    aggregate_key,
    sweep_interval_s,
)
from api.principal import Principal
from api.rate_limits import Bucket, Verdict

REFUSAL = Refusal(
    "victim", "eve", "token", ("admin",), "GET", "/v1/tenants/victim/agents", "GET x", "no", 403
)


def test_a_refusal_survives_its_trip_through_redis() -> None:
    assert Refusal.from_json(REFUSAL.to_json()) == REFUSAL
    assert Refusal.from_json(REFUSAL.to_json().encode()) == REFUSAL


def test_the_overflow_goes_to_the_callers_own_tenant_under_one_key() -> None:
    over = REFUSAL.overflow("home")
    assert (over.tenant, over.subject, over.action) == ("home", "eve", OVERFLOW_ACTION)
    assert over.path == REFUSAL.path and str(AGGREGATES_PER_CALLER) in over.reason
    other = Refusal("t2", "eve", "token", (), "POST", "/p", "POST y", "no", 403).overflow("home")
    assert aggregate_key(over) == aggregate_key(other)  # one overflow per caller and tenant
    assert aggregate_key(REFUSAL) != aggregate_key(over)
    # Strings that would collide if joined with a separator do not.
    a = Refusal("a:b", "c", "token", (), "GET", "/", "x", "r", 403)
    b = Refusal("a", "b:c", "token", (), "GET", "/", "x", "r", 403)
    assert aggregate_key(a) != aggregate_key(b)


def test_the_sweeper_looks_a_quarter_window_apart_within_bounds() -> None:
    assert sweep_interval_s(60) == 5.0
    assert sweep_interval_s(4) == 1.0
    assert sweep_interval_s(0.1) == 0.2


def test_before_authorization_only_the_callers_own_buckets_are_taken() -> None:
    s = Settings()
    foreign = Principal("eve", "attacker", frozenset({"admin"}))
    assert [b.key for b in own_buckets(s, foreign)] == ["tenant:attacker", "sub:eve"]
    # Its request to the victim's path would be charged to the victim only once allowed.
    assert addressed_bucket(s, foreign, "victim") == Bucket(
        "tenant:victim", s.rate_tenant_per_s, s.rate_tenant_burst
    )
    assert addressed_bucket(s, foreign, "attacker") is None
    assert addressed_bucket(s, foreign, None) is None  # a platform route: its own tenant's
    root = Principal("root", None, frozenset({"platform-admin"}))
    assert [b.key for b in own_buckets(s, root)] == ["sub:root"]
    assert addressed_bucket(s, root, "acme") is not None
    assert addressed_bucket(s, root, None) == Bucket(
        "tenant:_platform", s.rate_tenant_per_s, s.rate_tenant_burst
    )


def test_the_headers_describe_the_bucket_with_fewer_tokens_left() -> None:
    roomy = Verdict(True, Bucket("sub:a", 10, 100), 90, 0)
    tight = Verdict(True, Bucket("tenant:t", 10, 100), 3, 0)
    assert tightest(roomy, tight) is tight and tightest(tight, roomy) is tight
