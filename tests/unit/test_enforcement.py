"""Cedar enforcement on its own: requests, the layered policy set, verdicts."""

from __future__ import annotations

from typing import Any

from commands import enforcement
from commands.enforcement import compile_policies, evaluate, policy_key, request_for

MANIFEST = {
    "agent_name": "echo",
    "version": "1.0.0",
    "abi": "reactor",
    "models": ["mini"],
    "capabilities": ["progress"],
    "labels": {"team": "search"},
    "quotas": {"fuel": 5000, "memory_mb": 16, "timeout_ms": 1000, "max_concurrency": 2},
}
TENANT = {"status": "active", "users": {"alice": ["operator"], "victor": ["viewer"]}}


def task_request(actor: str = "alice", size: int = 10, **tenant: Any) -> dict[str, Any]:
    task = {"task_id": "t-1", "input_bytes": size, "labels": {"env": "prod"}}
    return request_for(
        "aion.task.SubmitTask", "acme", actor, {**TENANT, **tenant}, 1_000, MANIFEST, task
    )


def verdict(request: dict[str, Any], **policies: str) -> enforcement.Verdict:
    return evaluate(request, compile_policies(policy_key(policies)))


def test_without_tenant_policies_the_platform_default_permits() -> None:
    result = verdict(task_request())
    assert (result.decision, result.policy_ids) == ("allow", ("platform-default-permit",))
    assert result.reason("SubmitTask") == "SubmitTask allowed"


def test_a_tenant_forbid_on_attributes_denies_and_is_named() -> None:
    rules = {
        "big": 'forbid(principal, action == Action::"SubmitTask", resource) '
        "when { resource.input_bytes > 100 };",
        "prod-needs-operator": "forbid(principal, action, resource) "
        'when { resource.labels.contains("env=prod") } '
        'unless { principal in Role::"operator" };',
    }
    assert verdict(task_request(size=50), **rules).allowed
    big = verdict(task_request(size=500), **rules)
    assert (big.allowed, big.policy_ids) == (False, ("big",))
    assert big.reason("SubmitTask") == "SubmitTask denied by policy big"
    viewer = verdict(task_request(actor="victor"), **rules)
    assert viewer.policy_ids == ("prod-needs-operator",)
    stranger = verdict(task_request(actor="mallory"), **rules)  # no roles at all
    assert not stranger.allowed


def test_agent_attributes_reach_the_policies() -> None:
    rules = {
        "no-models": 'forbid(principal, action == Action::"DeployAgent", resource) '
        'when { resource.models.contains("mini") && resource.fuel > 1000 };'
    }
    request = request_for("aion.agent.DeployAgent", "acme", "alice", TENANT, 1, MANIFEST)
    assert request["resource"] == {"type": "Agent", "id": "acme/echo"}
    assert verdict(request, **rules).policy_ids == ("no-models",)
    task = task_request()
    on_task = {
        "agent-fuel": "forbid(principal, action, resource) "
        "when { resource has agent && resource.agent.fuel > 1000 };"
    }
    assert verdict(task, **on_task).policy_ids == ("agent-fuel",)


def test_no_tenant_permit_overrides_a_baseline_forbid() -> None:
    everything = {"allow-all": "permit(principal, action, resource);"}
    suspended = verdict(task_request(status="suspended"), **everything)
    assert (suspended.allowed, suspended.policy_ids) == (False, ("baseline-suspended-tenant",))
    request = task_request()
    # A principal of another tenant acting on acme's task.
    user = next(e for e in request["entities"] if e["uid"]["type"] == "User")
    user["attrs"]["tenant"] = {"__entity": {"type": "Tenant", "id": "other"}}
    request["entities"].append({"uid": {"type": "Tenant", "id": "other"},
                                "attrs": {"status": "active"}, "parents": []})  # fmt: skip
    crossed = verdict(request, **everything)
    assert (crossed.allowed, crossed.policy_ids) == (False, ("baseline-tenant-isolation",))


def test_a_text_with_several_policies_names_each() -> None:
    text = (
        "forbid(principal, action, resource) when { resource.input_bytes > 100 };\n"
        "forbid(principal, action, resource) when { resource.input_bytes > 5 };"
    )
    result = verdict(task_request(size=10), pair=text)
    assert result.policy_ids == ("pair#2",)


def test_a_compiled_set_is_reused_for_the_same_policies() -> None:
    key = policy_key({"a": "permit(principal, action, resource);"})
    assert compile_policies(key) is compile_policies(key)


def test_evaluation_errors_are_reported_in_the_diagnostics() -> None:
    # An attribute the entities lack: Cedar skips the policy and says why.
    rules = {"odd": "forbid(principal, action, resource) when { resource.missing > 1 };"}
    result = verdict(task_request(), **rules)
    assert result.allowed
    assert result.diagnostics and "odd" in " ".join(result.diagnostics)


def test_only_the_roles_the_write_model_records_count() -> None:
    """Issue 17, finding 12: a user's roles are the tenant's record of them; an API key's are
    its own aggregate's (``key_roles``). Nothing a command's envelope claims is an input."""
    rule = {
        "prod-needs-operator": "forbid(principal, action, resource) "
        'when { resource.labels.contains("env=prod") } '
        'unless { principal in Role::"operator" };'
    }
    task = {"task_id": "t-1", "input_bytes": 1, "labels": {"env": "prod"}}

    def by(actor: str, key_roles: list[str]) -> dict[str, Any]:
        return request_for(
            "aion.task.SubmitTask", "acme", actor, TENANT, 1, MANIFEST, task, key_roles
        )

    assert not verdict(by("sso-user", []), **rule).allowed  # not a registered user: no roles
    assert verdict(by("alice", []), **rule).allowed  # alice is an operator in the tenant
    assert verdict(by("key:0123456789abcdef", ["operator"]), **rule).allowed
