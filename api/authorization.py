"""Cedar decides every API action: the platform's role policies plus the tenant's forbids.

Each route is a Cedar action named by its method and path template, e.g.
``Action::"POST /v1/tenants/{tenant}/tasks"``, member of one group (``api:read``, ``api:run``,
``api:develop``, ``api:govern``, ``api:administer``, ``api:platform``). Roles are granted
groups by ``access.cedar``; the resource is the tenant of the path (``Tenant::"acme"``) or the
platform (``Platform::"aion"``). A tenant's own policies take part too, but only their
``forbid`` rules: a tenant can narrow what its roles may do, never widen it, and never what a
platform admin may do.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cedarpy

from api.principal import PLATFORM_ADMIN, Principal
from commands.enforcement import static_policies

ACCESS_POLICIES = (Path(__file__).parent / "access.cedar").read_text()
GROUPS = ("api:read", "api:run", "api:develop", "api:govern", "api:administer", "api:platform")
NO_TENANT = "*"  # the tenant attribute of a principal whose token names none
PLATFORM = "aion"

# The group of every route that is not a plain read (a GET is in api:read unless listed).
T = "/v1/tenants/{tenant}"
GROUP_OF: dict[tuple[str, str], str] = {
    ("POST", "/v1/tenants"): "api:platform",
    ("POST", f"{T}/suspend"): "api:platform",
    ("POST", f"{T}/reinstate"): "api:platform",
    ("POST", f"{T}/users"): "api:administer",
    ("PUT", f"{T}/users/{{user}}/roles"): "api:administer",
    ("DELETE", f"{T}/users/{{user}}"): "api:administer",
    ("POST", f"{T}/api-keys"): "api:administer",
    ("GET", f"{T}/api-keys"): "api:administer",
    ("DELETE", f"{T}/api-keys/{{key}}"): "api:administer",
    ("GET", f"{T}/audit"): "api:administer",
    ("POST", f"{T}/models"): "api:develop",
    ("POST", f"{T}/agents"): "api:develop",
    ("PUT", f"{T}/agents/{{agent}}"): "api:develop",
    ("POST", f"{T}/agents/{{agent}}/retire"): "api:develop",
    ("POST", f"{T}/modules"): "api:develop",
    ("PUT", f"{T}/policies/{{policy}}"): "api:govern",
    ("DELETE", f"{T}/policies/{{policy}}"): "api:govern",
    ("POST", f"{T}/policies/{{policy}}/simulate"): "api:govern",
    ("POST", f"{T}/tasks"): "api:run",
    ("POST", f"{T}/tasks/batch"): "api:run",
    ("POST", f"{T}/tasks/{{task}}/cancel"): "api:run",
}


@dataclass(frozen=True)
class Action:
    id: str  # "METHOD /path/{template}"
    group: str
    tenant_param: str | None  # the path parameter naming the tenant; None: the platform


def action_for(method: str, template: str) -> Action:
    """The Cedar action of a route; KeyError for a non-read route missing from GROUP_OF."""
    group = GROUP_OF.get((method, template))
    if group is None:
        if method not in ("GET", "HEAD"):
            raise KeyError(f"{method} {template} has no access group")
        group = "api:read"
    tenant_param = "tenant" if "{tenant}" in template else None
    return Action(f"{'GET' if method == 'HEAD' else method} {template}", group, tenant_param)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    policy_ids: tuple[str, ...]
    action: str

    def reason(self) -> str:
        if self.allowed:
            return f"{self.action} allowed by {', '.join(self.policy_ids)}"
        if self.policy_ids:
            return f"{self.action} forbidden by policy {', '.join(self.policy_ids)}"
        return f"{self.action}: none of the caller's roles permits it"


# `unless { principal in Role::"platform-admin" }`, added to every tenant forbid: a tenant
# narrows what its own roles may do, never what the platform does to it (suspend, reinstate,
# delete the policy...). Issue 17, finding 9.
NOT_PLATFORM_ADMIN = {
    "kind": "unless",
    "body": {
        "in": {
            "left": {"Var": "principal"},
            "right": {"Value": {"__entity": {"type": "Role", "id": PLATFORM_ADMIN}}},
        }
    },
}


def _forbids(tenant_policies: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A tenant's forbid rules, none of which binds a platform admin."""
    found: dict[str, Any] = {}
    for policy_id, text in tenant_policies:
        try:
            statics = static_policies(policy_id, text)
        except Exception:  # validated at PutPolicy; a text that no longer parses is skipped
            continue
        # Prefixed, so that no tenant policy can take (and so replace) a platform policy's id.
        found.update(
            {
                f"tenant:{k}": {**v, "conditions": [*v.get("conditions", []), NOT_PLATFORM_ADMIN]}
                for k, v in statics.items()
                if v.get("effect") == "forbid"
            }
        )
    return found


def _named_by_annotation(statics: dict[str, Any]) -> dict[str, Any]:
    """The platform's policies under their @id, so that a denial names e.g. api-admin."""
    return {str((b.get("annotations") or {}).get("id") or k): b for k, b in statics.items()}


@lru_cache(maxsize=1024)
def compiled(tenant_policies: tuple[tuple[str, str], ...]) -> cedarpy.PolicySet:
    """The platform's access policies with a tenant's forbid rules, parsed once per set."""
    platform = _named_by_annotation(static_policies("access", ACCESS_POLICIES))
    statics = {**platform, **_forbids(tenant_policies)}
    return cedarpy.PolicySet.from_json_str(
        json.dumps({"staticPolicies": statics, "templates": {}, "templateLinks": []})
    )


def _uid(kind: str, uid: str) -> dict[str, str]:
    return {"type": kind, "id": uid}


def request_for(principal: Principal, action: Action, tenant: str | None) -> dict[str, Any]:
    """The Cedar request and its entities (JSON form, like commands.enforcement's)."""
    home = principal.tenant or NO_TENANT
    roles = sorted(principal.roles)
    user = {
        "uid": _uid("User", f"{home}/{principal.subject}"),
        "attrs": {"tenant": {"__entity": _uid("Tenant", home)}},
        "parents": [_uid("Role", r) for r in roles],
    }
    resource = _uid("Tenant", tenant) if tenant is not None else _uid("Platform", PLATFORM)
    entities: list[dict[str, Any]] = [
        user,
        *({"uid": _uid("Role", r), "attrs": {}, "parents": []} for r in roles),
        {"uid": _uid("Tenant", home), "attrs": {"status": "active"}, "parents": []},
        {"uid": resource, "attrs": {"status": "active"} if tenant else {}, "parents": []},
        {"uid": _uid("Action", action.id), "attrs": {}, "parents": [_uid("Action", action.group)]},
        *({"uid": _uid("Action", g), "attrs": {}, "parents": []} for g in GROUPS),
    ]
    unique = {json.dumps(e["uid"], sort_keys=True): e for e in entities}
    return {
        "principal": user["uid"],
        "action": _uid("Action", action.id),
        "resource": resource,
        "context": {"via": principal.via},
        "entities": list(unique.values()),
    }


@lru_cache(maxsize=8192)
def decide(
    principal: Principal,
    action: Action,
    tenant: str | None,
    tenant_policies: tuple[tuple[str, str], ...] = (),
) -> Decision:
    """Cedar's verdict, remembered per distinct input: a decision is a pure function of the
    principal, the action, the tenant and the policy set, and callers repeat themselves."""
    request = request_for(principal, action, tenant)

    def ref(uid: dict[str, str]) -> str:
        return f"{uid['type']}::{json.dumps(uid['id'])}"

    result = cedarpy.is_authorized(
        {
            "principal": ref(request["principal"]),
            "action": ref(request["action"]),
            "resource": ref(request["resource"]),
            "context": request["context"],
        },
        compiled(tenant_policies),
        request["entities"],
    )
    return Decision(bool(result.allowed), tuple(sorted(result.diagnostics.reasons)), action.id)


class TenantPolicies:
    """A tenant's active policies from the read model, cached for a few seconds per tenant,
    for at most ``tenants`` tenants (the least recently stored leaves first: issue 17)."""

    def __init__(self, ttl_s: float = 2.0, tenants: int = 4096) -> None:
        self.ttl_s = ttl_s
        self.tenants = tenants
        self._cache: OrderedDict[str, tuple[float, tuple[tuple[str, str], ...]]] = OrderedDict()

    def cached(self, tenant: str) -> tuple[tuple[str, str], ...] | None:
        hit = self._cache.get(tenant)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def store(
        self, tenant: str, policies: Iterable[tuple[str, str]]
    ) -> tuple[tuple[str, str], ...]:
        key = tuple(sorted(policies))
        self._cache[tenant] = (time.monotonic(), key)
        self._cache.move_to_end(tenant)
        while len(self._cache) > self.tenants:
            self._cache.popitem(last=False)
        return key

    def __len__(self) -> int:
        return len(self._cache)


def schema_actions(routes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The Cedar schema's declaration of the API actions (committed as
    commands/cedar_api_actions.json, so that tenant policies naming them validate)."""
    applies = {"principalTypes": ["User"], "resourceTypes": ["Tenant", "Platform"]}
    actions: dict[str, Any] = {g: {"appliesTo": applies} for g in GROUPS}
    for method, template in sorted(routes):
        action = action_for(method, template)
        actions[action.id] = {"memberOf": [{"id": action.group}], "appliesTo": applies}
    return actions
