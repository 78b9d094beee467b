"""The command endpoints: each submits one command to Aion's write side.

Every one sends an ``Idempotency-Key`` (a fresh uuid4 unless given), so that the clients may
retry it after a lost connection: the API answers a repeat with the first response. ``wait``
asks for the decider's outcome (``Prefer: wait=N``); a rejection then raises its typed error
(Conflict, NotFound, Unprocessable, Forbidden) with the command id in ``problem``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx

from aion_sdk.calls import (
    Call,
    CommandOptions,
    command,
    command_result,
    json_of,
    path,
    query,
)
from aion_sdk.models import BatchResult, CommandResult, Module

T = "/v1/tenants/{tenant}"
Json = Any


def create_tenant(
    tenant_id: str,
    display_name: str,
    *,
    labels: Mapping[str, str] | None = None,
    limits: Mapping[str, int] | None = None,
    wait: float | None = None,
    idempotency_key: str | None = None,
) -> Call[CommandResult]:
    """Create a tenant (platform admins); ``limits`` as in the CreateTenant schema."""
    body = {"tenant_id": tenant_id, "display_name": display_name, "labels": labels,
            "limits": limits}  # fmt: skip
    return command("POST", "/v1/tenants", body, CommandOptions(wait, idempotency_key))


def suspend_tenant(
    tenant: str,
    reason: str,
    *,
    wait: float | None = None,
    idempotency_key: str | None = None,
    if_match: int | str | None = None,
) -> Call[CommandResult]:
    """Suspend a tenant: it still reads but accepts no command (403 ``suspended``)."""
    options = CommandOptions(wait, idempotency_key, if_match)
    return command("POST", T + "/suspend", {"reason": reason}, options, tenant=tenant)


def reinstate_tenant(
    tenant: str,
    *,
    wait: float | None = None,
    idempotency_key: str | None = None,
    if_match: int | str | None = None,
) -> Call[CommandResult]:
    options = CommandOptions(wait, idempotency_key, if_match)
    return command("POST", T + "/reinstate", {}, options, tenant=tenant)


def add_user(
    tenant: str,
    user_id: str,
    display_name: str,
    roles: Sequence[str],
    *,
    wait: float | None = None,
    idempotency_key: str | None = None,
    if_match: int | str | None = None,
) -> Call[CommandResult]:
    """Add a user with roles among admin, operator, developer, viewer."""
    body = {"user_id": user_id, "display_name": display_name, "roles": list(roles)}
    options = CommandOptions(wait, idempotency_key, if_match)
    return command("POST", T + "/users", body, options, tenant=tenant)


def assign_roles(
    tenant: str,
    user: str,
    roles: Sequence[str],
    *,
    wait: float | None = None,
    idempotency_key: str | None = None,
    if_match: int | str | None = None,
) -> Call[CommandResult]:
    """Replace a user's roles (the last admin keeps admin: 409)."""
    options = CommandOptions(wait, idempotency_key, if_match)
    body = {"roles": list(roles)}
    return command("PUT", T + "/users/{user}/roles", body, options, tenant=tenant, user=user)


def remove_user(
    tenant: str,
    user: str,
    *,
    wait: float | None = None,
    idempotency_key: str | None = None,
    if_match: int | str | None = None,
) -> Call[CommandResult]:
    options = CommandOptions(wait, idempotency_key, if_match)
    return command("DELETE", T + "/users/{user}", None, options, tenant=tenant, user=user)


def register_model(
    tenant: str,
    model_name: str,
    provider: str,
    kind: str,
    *,
    parameters: Mapping[str, str] | None = None,
    description: str | None = None,
    wait: float | None = None,
    idempotency_key: str | None = None,
) -> Call[CommandResult]:
    """Register a model (``kind``: chat, embedding, completion, other)."""
    body = {"model_name": model_name, "provider": provider, "kind": kind,
            "parameters": parameters, "description": description}  # fmt: skip
    options = CommandOptions(wait, idempotency_key)
    return command("POST", T + "/models", body, options, tenant=tenant)


def deploy_agent(
    tenant: str,
    manifest: Mapping[str, Any],
    *,
    wait: float | None = None,
    idempotency_key: str | None = None,
) -> Call[CommandResult]:
    """Deploy an agent: ``manifest`` has agent_name, version, module_digest (of a module
    uploaded to this tenant), abi, quotas and optional models, capabilities, input_schema."""
    options = CommandOptions(wait, idempotency_key)
    return command("POST", T + "/agents", {"manifest": dict(manifest)}, options, tenant=tenant)


def update_agent(
    tenant: str,
    agent: str,
    manifest: Mapping[str, Any],
    *,
    wait: float | None = None,
    idempotency_key: str | None = None,
    if_match: int | str | None = None,
) -> Call[CommandResult]:
    """Deploy a new version of an agent (the manifest's version must be higher)."""
    options = CommandOptions(wait, idempotency_key, if_match)
    body = {"manifest": dict(manifest)}
    return command("PUT", T + "/agents/{agent}", body, options, tenant=tenant, agent=agent)


def retire_agent(
    tenant: str,
    agent: str,
    reason: str = "",
    *,
    wait: float | None = None,
    idempotency_key: str | None = None,
    if_match: int | str | None = None,
) -> Call[CommandResult]:
    options = CommandOptions(wait, idempotency_key, if_match)
    body = {"reason": reason}
    return command("POST", T + "/agents/{agent}/retire", body, options, tenant=tenant,
                   agent=agent)  # fmt: skip


def put_policy(
    tenant: str,
    policy: str,
    cedar: str,
    description: str | None = None,
    *,
    wait: float | None = None,
    idempotency_key: str | None = None,
    if_match: int | str | None = None,
) -> Call[CommandResult]:
    """Create or replace a Cedar policy."""
    options = CommandOptions(wait, idempotency_key, if_match)
    body = {"cedar": cedar, "description": description}
    return command("PUT", T + "/policies/{policy}", body, options, tenant=tenant, policy=policy)


def delete_policy(
    tenant: str,
    policy: str,
    *,
    wait: float | None = None,
    idempotency_key: str | None = None,
    if_match: int | str | None = None,
) -> Call[CommandResult]:
    options = CommandOptions(wait, idempotency_key, if_match)
    return command("DELETE", T + "/policies/{policy}", None, options, tenant=tenant,
                   policy=policy)  # fmt: skip


def task_body(
    agent_name: str,
    input: Json = None,
    *,
    input_json: str | None = None,
    task_id: str | None = None,
    labels: Mapping[str, str] | None = None,
    deadline_ms: int | None = None,
) -> dict[str, Any]:
    """A SubmitTask body. ``input`` is any JSON value (encoded here: the API takes JSON text);
    ``input_json`` is JSON text already. The task id is made here when not given, so that a
    retry sends the very same body (the API would otherwise generate a new id per attempt)."""
    text = input_json if input_json is not None else json.dumps(input)
    return {"task_id": task_id or str(uuid.uuid4()), "agent_name": agent_name, "input": text,
            "labels": labels, "deadline_ms": deadline_ms}  # fmt: skip


def submit_task(
    tenant: str,
    agent_name: str,
    input: Json = None,
    *,
    input_json: str | None = None,
    task_id: str | None = None,
    labels: Mapping[str, str] | None = None,
    deadline_ms: int | None = None,
    wait: float | None = None,
    idempotency_key: str | None = None,
) -> Call[CommandResult]:
    """Submit a task to an agent; with ``wait``, 201 once it is accepted (not finished: follow
    ``task_events`` or read the task)."""
    body = task_body(agent_name, input, input_json=input_json, task_id=task_id, labels=labels,
                     deadline_ms=deadline_ms)  # fmt: skip
    task_id = str(body["task_id"])

    def parse(response: httpx.Response) -> CommandResult:
        return replace(command_result(response), task_id=task_id)

    options = CommandOptions(wait, idempotency_key)
    return command("POST", T + "/tasks", body, options, parse=parse, tenant=tenant)


def cancel_task(
    tenant: str,
    task: str,
    reason: str = "",
    *,
    wait: float | None = None,
    idempotency_key: str | None = None,
    if_match: int | str | None = None,
) -> Call[CommandResult]:
    options = CommandOptions(wait, idempotency_key, if_match)
    return command("POST", T + "/tasks/{task}/cancel", {"reason": reason}, options,
                   tenant=tenant, task=task)  # fmt: skip


def submit_tasks(tenant: str, tasks: Sequence[Mapping[str, Any]]) -> Call[BatchResult]:
    """Up to 1,000 SubmitTask bodies (see ``task_body``) in one request; 202 with a command id
    or a problem per item. The API takes no Idempotency-Key here: every item gets a task id
    instead, so that a retried batch is refused item by item rather than run twice."""
    items = [{**t, "task_id": t.get("task_id") or str(uuid.uuid4())} for t in tasks]
    items = [{k: v for k, v in t.items() if v is not None} for t in items]
    return Call("POST", path(T + "/tasks/batch", tenant=tenant), json_of, json={"tasks": items},
                safe=True)  # fmt: skip


def create_api_key(
    tenant: str,
    name: str,
    roles: Sequence[str],
    *,
    rate_per_s: float | None = None,
    burst: int | None = None,
    expires_at_ms: int | None = None,
    wait: float | None = None,
    idempotency_key: str | None = None,
) -> Call[CommandResult]:
    """Create an API key; ``result.body["api_key"]`` is the whole key, shown this once (a
    replayed answer does not carry it: revoke that key and make another)."""
    body = {"name": name, "roles": list(roles), "rate_per_s": rate_per_s, "burst": burst,
            "expires_at": expires_at_ms}  # fmt: skip
    options = CommandOptions(wait, idempotency_key)
    return command("POST", T + "/api-keys", body, options, tenant=tenant)


def revoke_api_key(
    tenant: str,
    key_id: str,
    reason: str | None = None,
    *,
    wait: float | None = None,
    idempotency_key: str | None = None,
    if_match: int | str | None = None,
) -> Call[CommandResult]:
    """Revoke an API key: it is refused from then on."""
    options = CommandOptions(wait, idempotency_key, if_match)
    return command("DELETE", T + "/api-keys/{key}", None, options, query(reason=reason),
                   tenant=tenant, key=key_id)  # fmt: skip


def _module(response: Any) -> Module:
    found: Module = response.json()
    return found


def upload_module(tenant: str, wasm: bytes) -> Call[Module]:
    """Upload a WASM module (validated by the API, stored under its SHA-256); the answer's
    ``digest`` is what a manifest's ``module_digest`` names. The same bytes twice are stored
    once, so a retry is harmless."""
    headers = {"Content-Type": "application/wasm"}
    return Call("POST", path(T + "/modules", tenant=tenant), _module, content=bytes(wasm),
                headers=headers, safe=True)  # fmt: skip


def simulate_policy(
    tenant: str, policy: str, cedar: str, since: str | None = None
) -> Call[dict[str, Any]]:
    """What-if: the tenant's recorded decisions evaluated with ``cedar`` as this policy (not
    saved; nothing changes). An invalid text is a 422 naming ``/cedar``."""
    body: dict[str, Any] = {"cedar": cedar}
    if since is not None:
        body["since"] = since
    target = path(T + "/policies/{policy}/simulate", tenant=tenant, policy=policy)
    return Call("POST", target, lambda r: dict(r.json()), json=body, safe=True)
