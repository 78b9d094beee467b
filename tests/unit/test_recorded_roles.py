"""Issue 17, finding 12, on the write side: policy enforcement counts only the roles the write
model records (the tenant's users, an API key's own), never the envelope's ``actor_roles``,
which whoever writes to aion.commands sets at will."""

from __future__ import annotations

import pytest

from commands.model import scoped_id
from tests.unit.planning import Store, deploy, manifest, put_policy, records, tenant

OPERATORS_ONLY = (
    'forbid(principal, action == Action::"DeployAgent", resource) '
    'unless { principal in Role::"operator" };'
)
KEY_ID = "0123456789abcdef"


@pytest.fixture
def store() -> Store:
    s = Store()
    tenant(s)  # alice is the tenant's operator
    assert records(put_policy(s, "operators-only", OPERATORS_ONLY)) == ["PolicyPut"]
    return s


def test_forged_envelope_roles_authorize_nothing(store: Store) -> None:
    """The attack: a command written straight to the topic, claiming every role."""
    forged = ["operator", "admin", "platform-admin"]
    plan = store.run(
        "aion.agent.DeployAgent",
        scoped_id("acme", "echo"),
        {"manifest": manifest()},
        actor="mallory",
        actor_roles=forged,
    )
    assert records(plan) == ["EnforcementDecided", "AgentDeploymentRejected"]
    assert plan.emissions[0].value["policy_ids"] == ["operators-only"]


def test_the_tenants_recorded_role_authorizes_without_any_envelope_role(store: Store) -> None:
    plan = store.run(
        "aion.agent.DeployAgent",
        scoped_id("acme", "echo"),
        {"manifest": manifest()},
        actor="alice",
        actor_roles=[],
    )
    assert records(plan) == ["EnforcementDecided", "AgentDeployed"]


def test_a_removed_role_stops_counting_at_once(store: Store) -> None:
    store.run("aion.tenant.AddUser", "acme", {"user_id": "ann", "display_name": "A",
                                              "roles": ["admin"]})  # fmt: skip
    store.run("aion.tenant.AssignRole", "acme", {"user_id": "alice", "roles": ["viewer"]})
    plan = deploy(store)  # alice, whose token may still say operator
    assert records(plan) == ["EnforcementDecided", "AgentDeploymentRejected"]


def test_an_api_key_acts_with_its_recorded_roles_until_revoked(store: Store) -> None:
    key = {"key_id": KEY_ID, "name": "ci", "roles": ["operator"], "secret_sha256": "0" * 64}
    key_aggregate = scoped_id("acme", KEY_ID)
    assert records(store.run("aion.api_key.CreateApiKey", key_aggregate, key)) == ["ApiKeyCreated"]
    as_key = {"actor": f"key:{KEY_ID}", "actor_roles": []}
    assert deploy_as(store, "one", **as_key)[-1] == "AgentDeployed"
    store.run("aion.api_key.RevokeApiKey", key_aggregate, {"key_id": KEY_ID, "reason": "leak"})
    forged = {"actor": f"key:{KEY_ID}", "actor_roles": ["operator"]}
    assert deploy_as(store, "two", **forged)[-1] == "AgentDeploymentRejected"


def deploy_as(store: Store, name: str, **envelope: object) -> list[str]:
    payload = {"manifest": manifest(name)}
    return records(
        store.run("aion.agent.DeployAgent", scoped_id("acme", name), payload, **envelope)
    )
