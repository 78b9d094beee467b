"""Policy enforcement: the Cedar verdict on a deployment or a task. Pure, no I/O.

A decision is evaluated against three layers, compiled into one Cedar policy set per tenant
and policy version (and cached):

* **baseline** policies of the platform, ``forbid`` rules no tenant can remove or override
  (in Cedar a matching ``forbid`` always wins over any ``permit``);
* the **platform default** ``permit``, so that a tenant without policies works at once;
* the **tenant's** own policies (PutPolicy), which restrict with ``forbid`` rules.

The request (principal, action, resource, context and the entities it needs) is a plain JSON
document recorded in the EnforcementDecided event, so any decision can be re-evaluated later
against another policy set (``aion policy simulate``) without the state it was made from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cedarpy

from commands.model import scoped_id

DECIDED = "aion.enforcement.EnforcementDecided"
KEY_ACTOR = "key:"  # an API key's actor is ``key:<key id>`` (api.credentials)

# Command type -> the Cedar action evaluated for it, and the subject's type.
ACTIONS: dict[str, tuple[str, str]] = {
    "aion.agent.DeployAgent": ("DeployAgent", "agent"),
    "aion.agent.UpdateAgent": ("UpdateAgent", "agent"),
    "aion.task.SubmitTask": ("SubmitTask", "task"),
}

BASELINE: dict[str, str] = {
    # Nobody acts on another tenant's agents or tasks, whatever a tenant's policies say.
    "baseline-tenant-isolation": "forbid(principal, action, resource) "
    "unless { principal.tenant == resource.tenant };",
    # Defence in depth: the deciders already refuse commands of a suspended tenant.
    "baseline-suspended-tenant": "forbid(principal, action, resource) "
    'when { principal.tenant.status == "suspended" };',
}
PLATFORM_DEFAULT: dict[str, str] = {
    "platform-default-permit": "permit(principal, action, resource);",
}
PLATFORM_IDS = frozenset(BASELINE) | frozenset(PLATFORM_DEFAULT)
# The platform's namespace: no tenant policy id may start so (PutPolicy refuses it), and a
# tenant policy stored before that rule is still kept apart (``TENANT_PREFIX``, below).
RESERVED_PREFIXES = ("baseline-", "platform-")
# A tenant policy whose name a platform policy holds is compiled under this prefix, so it can
# never replace that platform policy (issue 17, finding 9).
TENANT_PREFIX = "tenant:"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    policy_ids: tuple[str, ...]  # the policies that determined the decision
    diagnostics: tuple[str, ...]  # evaluation errors, and a reason when nothing matched

    @property
    def decision(self) -> str:
        return "allow" if self.allowed else "deny"

    def reason(self, action: str) -> str:
        """The sentence a rejection carries."""
        if self.allowed:
            return f"{action} allowed"
        if self.policy_ids:
            return f"{action} denied by policy {', '.join(self.policy_ids)}"
        return f"{action} denied: no policy permits it"


def static_policies(policy_id: str, text: str) -> dict[str, Any]:
    """A policy text's static policies in Cedar's JSON form, named after our policy id (and
    numbered when one text holds several), so that Cedar's reasons name our policies."""
    found = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
    bodies = list(found.values())
    if len(bodies) == 1:
        return {policy_id: bodies[0]}
    return {f"{policy_id}#{i + 1}": body for i, body in enumerate(bodies)}


def reserved(policy_id: str) -> bool:
    """Whether a policy id is in the platform's namespace (``baseline-*``, ``platform-*``)."""
    return policy_id.startswith(RESERVED_PREFIXES)


@lru_cache(maxsize=512)
def compile_policies(tenant_policies: tuple[tuple[str, str], ...]) -> cedarpy.PolicySet:
    """One parsed set per distinct tenant policy set: parsing dominates a Cedar call.

    The platform's policies go in first and keep their names; a tenant policy in the
    platform's namespace (stored before PutPolicy refused such names) is added as
    ``tenant:<id>``, beside the platform's policy rather than in its place."""
    statics: dict[str, Any] = {}
    for policy_id, text in (*BASELINE.items(), *PLATFORM_DEFAULT.items()):
        statics.update(static_policies(policy_id, text))
    for policy_id, text in tenant_policies:
        name = f"{TENANT_PREFIX}{policy_id}" if reserved(policy_id) else policy_id
        statics.update(static_policies(name, text))
    return cedarpy.PolicySet.from_json_str(
        json.dumps({"staticPolicies": statics, "templates": {}, "templateLinks": []})
    )


CANDIDATE = "candidate"


def _source_order(key: str) -> int:
    """Cedar numbers a text's policies policy0, policy1, ... in source order."""
    digits = key.removeprefix("policy")
    return int(digits) if digits.isdigit() else 0


def candidate_policies(text: str, default_id: str = CANDIDATE) -> dict[str, str]:
    """A policy file split into one Cedar text per policy, for ``compile_policies``.

    Each policy is named by its ``@id("...")`` annotation, else ``candidate`` (or
    ``candidate#N`` for the Nth policy of a file of several), so that a simulated verdict
    names the file's own policies. Raises ValueError for text that does not parse, for a
    template, and for a name given twice or in the platform's namespace (``baseline-*``,
    ``platform-*``).
    """
    parsed = json.loads(cedarpy.policies_to_json_str(text))
    if parsed.get("templates"):
        raise ValueError("templates (policies with ?principal or ?resource) are not supported")
    found = sorted(parsed["staticPolicies"].items(), key=lambda item: _source_order(item[0]))
    named: dict[str, str] = {}
    for index, (_, body) in enumerate(found):
        given = str((body.get("annotations") or {}).get("id") or "")
        policy_id = given or (default_id if len(found) == 1 else f"{default_id}#{index + 1}")
        if reserved(policy_id):
            raise ValueError(
                f"policy id {policy_id!r} is in the platform's namespace "
                f"({', '.join(p + '*' for p in RESERVED_PREFIXES)})"
            )
        if policy_id in named:
            raise ValueError(f"policy id {policy_id!r} is given to more than one policy")
        single = {"staticPolicies": {policy_id: body}, "templates": {}, "templateLinks": []}
        named[policy_id] = cedarpy.policies_from_json_str(json.dumps(single))
    return named


def policy_key(policies: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The hashable, ordered form of a tenant's policies (policy id -> Cedar text)."""
    return tuple(sorted(policies.items()))


def _uid(kind: str, uid: str) -> dict[str, str]:
    return {"type": kind, "id": uid}


def _ref(kind: str, uid: str) -> dict[str, Any]:
    return {"__entity": _uid(kind, uid)}


def _labels(labels: Mapping[str, str] | None) -> list[str]:
    """Labels as a Cedar set of "key=value" strings (Cedar records need fixed keys)."""
    return sorted(f"{k}={v}" for k, v in (labels or {}).items())


def api_key_of(actor: str) -> str | None:
    """The key id of an API key's actor (``key:<key id>``), else None."""
    return actor.removeprefix(KEY_ACTOR) if actor.startswith(KEY_ACTOR) else None


def _principal(
    tenant_id: str, tenant: Mapping[str, Any], actor: str, key_roles: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The user and its roles, as the write model records them: those the tenant assigned to
    that user id (AddUser, AssignRole), or an API key's own (``key_roles``, from its
    aggregate). Never the roles a command's envelope claims (``actor_roles``): anyone who can
    write to aion.commands could claim any (issue 17, finding 12)."""
    registered = (tenant.get("users") or {}).get(actor) or []
    roles = sorted({*registered, *key_roles})
    tenant_entity = {
        "uid": _uid("Tenant", tenant_id),
        "attrs": {"status": str(tenant.get("status") or "active")},
        "parents": [],
    }
    user = {
        "uid": _uid("User", scoped_id(tenant_id, actor)),
        "attrs": {"tenant": _ref("Tenant", tenant_id)},
        "parents": [_uid("Role", role) for role in sorted(roles)] + [_uid("Tenant", tenant_id)],
    }
    roles_entities = [{"uid": _uid("Role", r), "attrs": {}, "parents": []} for r in sorted(roles)]
    return tenant_entity, {"user": user, "roles": roles_entities}


def agent_entity(tenant_id: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    quotas = manifest.get("quotas") or {}
    return {
        "uid": _uid("Agent", scoped_id(tenant_id, str(manifest["agent_name"]))),
        "attrs": {
            "tenant": _ref("Tenant", tenant_id),
            "name": str(manifest["agent_name"]),
            "version": str(manifest["version"]),
            "abi": str(manifest["abi"]),
            "models": sorted(manifest.get("models") or []),
            "capabilities": sorted(manifest.get("capabilities") or []),
            "labels": _labels(manifest.get("labels")),
            "fuel": int(quotas.get("fuel", 0)),
            "memory_mb": int(quotas.get("memory_mb", 0)),
            "timeout_ms": int(quotas.get("timeout_ms", 0)),
            "max_concurrency": int(quotas.get("max_concurrency", 1)),
        },
        "parents": [_uid("Tenant", tenant_id)],
    }


def request_for(
    command_type: str,
    tenant_id: str,
    actor: str,
    tenant: Mapping[str, Any],
    now_ms: int,
    manifest: Mapping[str, Any],
    task: Mapping[str, Any] | None = None,
    key_roles: Sequence[str] = (),
) -> dict[str, Any]:
    """The Cedar request for a command, with every entity it refers to.

    ``manifest`` is the deployed (or to-be-deployed) agent's; ``task`` the submitted task's
    fields (task_id, input_bytes, labels) for SubmitTask; ``key_roles`` the roles of the API
    key that sent the command, as its aggregate records them (empty for any other actor).
    """
    action, _ = ACTIONS[command_type]
    tenant_entity, principal = _principal(tenant_id, tenant, actor, key_roles)
    agent = agent_entity(tenant_id, manifest)
    entities = [tenant_entity, principal["user"], *principal["roles"], agent]
    resource = agent["uid"]
    if task is not None:
        resource = _uid("Task", scoped_id(tenant_id, str(task["task_id"])))
        entities.append(
            {
                "uid": resource,
                "attrs": {
                    "tenant": _ref("Tenant", tenant_id),
                    "agent": _ref("Agent", agent["uid"]["id"]),
                    "agent_name": str(manifest["agent_name"]),
                    "input_bytes": int(task["input_bytes"]),
                    "labels": _labels(task.get("labels")),
                },
                "parents": [agent["uid"], _uid("Tenant", tenant_id)],
            }
        )
    return {
        "principal": principal["user"]["uid"],
        "action": _uid("Action", action),
        "resource": resource,
        "context": {"now_ms": now_ms},
        "entities": entities,
    }


def _cedar_uid(uid: Mapping[str, str]) -> str:
    return f"{uid['type']}::{json.dumps(uid['id'])}"


def evaluate(request: Mapping[str, Any], policies: cedarpy.PolicySet) -> Verdict:
    result = cedarpy.is_authorized(
        {
            "principal": _cedar_uid(request["principal"]),
            "action": _cedar_uid(request["action"]),
            "resource": _cedar_uid(request["resource"]),
            "context": dict(request["context"]),
        },
        policies,
        list(request["entities"]),
    )
    reasons = tuple(sorted(result.diagnostics.reasons))
    errors = tuple(str(e) for e in result.diagnostics.errors)
    return Verdict(bool(result.allowed), reasons, errors)
