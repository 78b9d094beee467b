"""Issue 17, finding 9: a tenant's policies can neither lock the platform out nor pass for the
platform's own rules."""

from __future__ import annotations

import pytest

from api.authorization import action_for, decide
from api.principal import PLATFORM_ADMIN, Principal
from commands import enforcement, policy
from commands.model import Command, Context, Rejection
from commands.policy import PolicyState

T = "/v1/tenants/{tenant}"
EVERYTHING = (("lock-out", "forbid(principal, action, resource);"),)
ROOT = Principal("root", None, frozenset({PLATFORM_ADMIN}))
# What the platform must always be able to do to a tenant, whatever its policies say.
PLATFORM_DUTIES = [
    ("POST", f"{T}/suspend"),
    ("POST", f"{T}/reinstate"),
    ("DELETE", f"{T}/policies/{{policy}}"),
    ("PUT", f"{T}/policies/{{policy}}"),
    ("GET", f"{T}/policies"),
    ("DELETE", f"{T}/users/{{user}}"),
    ("DELETE", f"{T}/api-keys/{{key}}"),
]


@pytest.mark.parametrize(("method", "path"), PLATFORM_DUTIES)
def test_a_tenant_forbid_on_everything_does_not_bind_a_platform_admin(
    method: str, path: str
) -> None:
    action = action_for(method, path)
    assert decide(ROOT, action, "victim", EVERYTHING).allowed
    # Nor a platform admin whose token happens to name the tenant.
    inside = Principal("root", "victim", frozenset({PLATFORM_ADMIN}))
    assert decide(inside, action, "victim", EVERYTHING).allowed


def test_the_same_forbid_still_binds_the_tenants_own_admin() -> None:
    admin = Principal("ann", "victim", frozenset({"admin"}))
    decision = decide(admin, action_for("DELETE", f"{T}/policies/{{policy}}"), "victim", EVERYTHING)
    assert not decision.allowed and decision.policy_ids == ("tenant:lock-out",)


def put(policy_id: str, cedar: str = "forbid(principal, action, resource);") -> Command:
    envelope = {
        "command_id": "c-1",
        "command_type": policy.PUT,
        "tenant_id": "acme",
        "aggregate_type": "policy",
        "aggregate_id": f"acme/{policy_id}",
    }
    return Command(policy.PUT, envelope, {"policy_id": policy_id, "cedar": cedar})


@pytest.mark.parametrize(
    "policy_id", ["baseline-tenant-isolation", "baseline-suspended-tenant", "baseline-x",
                  "platform-default-permit", "platform-y"],
)  # fmt: skip
def test_put_policy_refuses_a_name_in_the_platforms_namespace(policy_id: str) -> None:
    refused = policy.decide(PolicyState(), put(policy_id), Context())
    assert isinstance(refused, Rejection)
    assert (refused.code, refused.field) == ("invalid", "/policy_id")
    assert "reserved" in refused.reason


def test_every_platform_policy_is_in_the_reserved_namespace() -> None:
    assert all(enforcement.reserved(p) for p in enforcement.PLATFORM_IDS)
    assert not enforcement.reserved("my-baseline")


def test_a_stored_baseline_named_policy_cannot_replace_the_baseline() -> None:
    """A tenant policy named like a baseline rule, stored before PutPolicy refused such names,
    is compiled beside the baseline rule, not in its place: the suspended tenant stays denied,
    and the tenant's rule is named as the tenant's."""
    manifest = {"agent_name": "echo", "version": "1", "abi": "reactor"}
    task = {"task_id": "t-1", "input_bytes": 1, "labels": {}}
    suspended = {"status": "suspended", "users": {}}
    request = enforcement.request_for(
        "aion.task.SubmitTask", "acme", "ann", suspended, 1, manifest, task
    )
    harmless = "forbid(principal, action, resource) when { false };"
    key = enforcement.policy_key({"baseline-suspended-tenant": harmless})
    verdict = enforcement.evaluate(request, enforcement.compile_policies(key))
    assert (verdict.allowed, verdict.policy_ids) == (False, ("baseline-suspended-tenant",))
    # The tenant's own rule still applies, under the tenant's name.
    active = enforcement.request_for(
        "aion.task.SubmitTask", "acme", "ann", {"status": "active"}, 1, manifest, task
    )
    strict = enforcement.policy_key({"baseline-x": "forbid(principal, action, resource);"})
    denied = enforcement.evaluate(active, enforcement.compile_policies(strict))
    assert (denied.allowed, denied.policy_ids) == (False, ("tenant:baseline-x",))


def test_a_simulated_candidate_in_the_platforms_namespace_is_refused() -> None:
    text = '@id("baseline-tenant-isolation") forbid(principal, action, resource) when { false };'
    with pytest.raises(ValueError, match="platform's namespace"):
        enforcement.candidate_policies(text)


def test_the_api_refuses_a_reserved_name_before_producing() -> None:
    refused = policy.check_policy_name({"policy_id": "baseline-tenant-isolation", "cedar": "x"})
    assert refused is not None and refused.field == "/policy_id"
    assert policy.check_policy_name({"policy_id": "my-rule", "cedar": "x"}) is None
