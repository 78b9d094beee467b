"""API authorization: every route has an action, each role gets exactly its groups, tenants
stay apart, and a tenant's policies can only narrow access."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aion.settings import Settings
from api.app import cedar_api_actions, create_app, guarded_routes
from api.authorization import GROUPS, TenantPolicies, action_for, decide
from api.principal import Principal
from commands.policy import check_cedar

ROOT = Path(__file__).resolve().parents[2]
ROUTES = guarded_routes(create_app(Settings()))
ROLE_GROUPS = {
    "viewer": {"api:read"},
    "developer": {"api:read", "api:run", "api:develop"},
    "operator": {"api:read", "api:run", "api:govern"},
    "admin": {"api:read", "api:run", "api:develop", "api:govern", "api:administer"},
}


def test_every_guarded_route_has_an_access_group() -> None:
    assert len(ROUTES) > 30
    for method, path in ROUTES:
        assert action_for(method, path).group in GROUPS


def test_an_unlisted_write_route_has_no_group() -> None:
    with pytest.raises(KeyError):
        action_for("POST", "/v1/tenants/{tenant}/something-new")


def test_the_committed_cedar_actions_match_the_routes() -> None:
    committed = (ROOT / "commands" / "cedar_api_actions.json").read_text()
    assert committed == cedar_api_actions(), "run `aion docs cedar` and commit the file"


@pytest.mark.parametrize("role", sorted(ROLE_GROUPS))
def test_each_role_may_do_exactly_its_groups_in_its_own_tenant(role: str) -> None:
    caller = Principal("alice", "acme", frozenset({role}))
    for method, path in ROUTES:
        action = action_for(method, path)
        tenant = "acme" if action.tenant_param else None
        allowed = decide(caller, action, tenant).allowed
        expected = (
            action.group in ROLE_GROUPS[role]
            if tenant
            else action.id.startswith("GET /v1/commands/")
        )
        assert allowed == expected, (role, action.id)


@pytest.mark.parametrize("role", sorted(ROLE_GROUPS))
def test_no_role_reaches_another_tenant(role: str) -> None:
    caller = Principal("alice", "acme", frozenset({role}))
    for method, path in ROUTES:
        action = action_for(method, path)
        if action.tenant_param:
            decision = decide(caller, action, "globex")
            assert not decision.allowed, action.id
            assert decision.policy_ids == ("api-tenant-isolation",) or not decision.policy_ids


def test_a_platform_admin_may_do_everything_everywhere() -> None:
    root = Principal("root", None, frozenset({"platform-admin"}))
    for method, path in ROUTES:
        action = action_for(method, path)
        assert decide(root, action, "globex" if action.tenant_param else None).allowed


def test_only_a_platform_admin_creates_tenants() -> None:
    create = action_for("POST", "/v1/tenants")
    admin = Principal("alice", "acme", frozenset({"admin"}))
    assert not decide(admin, create, None).allowed
    assert decide(Principal("r", None, frozenset({"platform-admin"})), create, None).allowed


def test_a_caller_without_roles_may_do_nothing_in_its_tenant() -> None:
    nobody = Principal("alice", "acme", frozenset())
    assert not decide(nobody, action_for("GET", "/v1/tenants/{tenant}/tasks"), "acme").allowed


TASKS = "GET /v1/tenants/{tenant}/tasks"


def test_a_tenant_forbid_narrows_a_role_and_is_named() -> None:
    policy = f'forbid(principal in Role::"developer", action == Action::"{TASKS}", resource);'
    assert check_cedar(policy) is None  # the tenant may write it: the action is in the schema
    dev = Principal("alice", "acme", frozenset({"developer"}))
    decision = decide(
        dev, action_for("GET", "/v1/tenants/{tenant}/tasks"), "acme", (("no", policy),)
    )
    assert not decision.allowed and decision.policy_ids == ("tenant:no",)


def test_a_tenant_permit_widens_nothing() -> None:
    viewer = Principal("v", "acme", frozenset({"viewer"}))
    wide = (("wide", "permit(principal, action, resource);"),)
    assert not decide(
        viewer, action_for("POST", "/v1/tenants/{tenant}/tasks"), "acme", wide
    ).allowed


def test_a_tenant_policy_cannot_replace_the_isolation_rule_by_its_id() -> None:
    sneaky = (("api-tenant-isolation", "forbid(principal, action, resource) when { false };"),)
    dev = Principal("alice", "acme", frozenset({"developer"}))
    assert not decide(dev, action_for("GET", TASKS.split(" ")[1]), "globex", sneaky).allowed


def test_the_cedar_actions_file_is_valid_json_with_every_group() -> None:
    actions = json.loads((ROOT / "commands" / "cedar_api_actions.json").read_text())
    assert set(GROUPS) <= set(actions)


def test_the_tenant_policy_cache_is_bounded() -> None:
    """Issue 17, finding 14: one entry per tenant ever seen, never let go."""
    policies = TenantPolicies(tenants=3)
    for n in range(10):
        policies.store(f"t{n}", [("p", "permit(principal, action, resource);")])
    assert len(policies) == 3
    assert policies.cached("t9") is not None and policies.cached("t0") is None
