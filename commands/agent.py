"""The Agent aggregate: a versioned WASM module a tenant may run tasks on. Pure, no I/O.

Id: ``scoped_id(tenant_id, agent_name)``. Lifecycle: absent -> deployed -> retired. A retired
agent keeps its name (it cannot be deployed again) and accepts no update.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from commands.aggregate import Aggregate
from commands.input_schema import schema_problem
from commands.model import Command, Context, Decision, Event, Rejection, scoped_id

AGGREGATE = "agent"

DEPLOY = "aion.agent.DeployAgent"
UPDATE = "aion.agent.UpdateAgent"
RETIRE = "aion.agent.RetireAgent"

DEPLOYED = "aion.agent.AgentDeployed"
UPDATED = "aion.agent.AgentUpdated"
RETIRED = "aion.agent.AgentRetired"
# A verdict of the policy stage, written to the agent's topic like a CommandRejected: it changes
# nothing, so evolve ignores it and the version does not move.
DEPLOYMENT_REJECTED = "aion.agent.AgentDeploymentRejected"

# Shared sub-record (not a message) used by the four manifest-carrying records.
MANIFEST = "aion.agent.AgentManifest"

AGENT_NAME = re.compile(r"[a-z0-9-]{1,63}")
SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
ABIS = ("reactor", "wasi_command")
CAPABILITIES = ("scratch_dir", "model_inference", "progress")

INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1

CONTAINERS = (
    ("models", list, "an array"),
    ("quotas", Mapping, "an object"),
    ("capabilities", list, "an array"),
    ("labels", Mapping, "an object"),
)

QUOTA_DEFAULTS: dict[str, int] = {"max_concurrency": 1, "max_retries": 0, "retry_backoff_ms": 1000}
# quota field -> (smallest allowed value, Avro maximum, the tenant limit it must not exceed)
QUOTA_RULES: dict[str, tuple[int, int, str | None]] = {
    "fuel": (1, LONG_MAX, "max_fuel"),
    "memory_mb": (1, INT_MAX, "max_memory_mb"),
    "timeout_ms": (1, INT_MAX, "max_timeout_ms"),
    "max_concurrency": (1, INT_MAX, "max_concurrent_tasks"),
    "max_retries": (0, INT_MAX, None),
    "retry_backoff_ms": (0, INT_MAX, None),
}


@dataclass(frozen=True)
class AgentState:
    version: int = 0
    agent_name: str | None = None
    status: str = "absent"  # absent -> deployed -> retired
    manifest: dict[str, Any] | None = None  # the normalised manifest (all defaults filled)
    retired_reason: str | None = None

    @property
    def exists(self) -> bool:
        return self.status != "absent"


# --- pure checks (the API may run them too, before producing) ---------------------------------


def parse_semver(text: str) -> tuple[int, int, int] | None:
    match = SEMVER.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def strict_json(text: str) -> Any:
    """json.loads refusing NaN/Infinity (not JSON); raises ValueError on anything invalid."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(text, parse_constant=refuse)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def normalise_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest with every Avro default filled in, as plain JSON-compatible values."""
    quotas = dict(manifest.get("quotas") or {})
    for key, default in QUOTA_DEFAULTS.items():
        quotas.setdefault(key, default)
    return {
        "agent_name": manifest.get("agent_name"),
        "version": manifest.get("version"),
        "module_digest": manifest.get("module_digest"),
        "entrypoint": manifest.get("entrypoint", "run"),
        "abi": manifest.get("abi"),
        "models": list(manifest.get("models") or []),
        "quotas": quotas,
        "capabilities": list(manifest.get("capabilities") or []),
        "input_schema": manifest.get("input_schema"),
        "description": manifest.get("description", ""),
        "labels": dict(manifest.get("labels") or {}),
        "index_outputs": manifest.get("index_outputs", False),
    }


def check_agent_name(name: Any, pointer: str) -> Rejection | None:
    if isinstance(name, str) and AGENT_NAME.fullmatch(name):
        return None
    return Rejection(
        "invalid",
        "agent_name must be 1-63 characters of lower-case letters, digits and dashes",
        pointer,
    )


def check_manifest(manifest: Any) -> Rejection | None:
    """Rules on a manifest's own fields, in field order; ``manifest`` is normalised or raw."""
    if not isinstance(manifest, Mapping):
        return Rejection("invalid", "manifest must be an object", "/manifest")
    for key, kind, noun in CONTAINERS:
        if manifest.get(key) is not None and not isinstance(manifest[key], kind):
            return Rejection("invalid", f"{key} must be {noun}", f"/manifest/{key}")
    m = normalise_manifest(manifest)
    invalid_name = check_agent_name(m["agent_name"], "/manifest/agent_name")
    if invalid_name:
        return invalid_name
    if parse_semver(m["version"]) is None:
        return Rejection(
            "invalid",
            "version must be a semantic version MAJOR.MINOR.PATCH (no leading zeros)",
            "/manifest/version",
        )
    digest = m["module_digest"]
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        return Rejection(
            "invalid",
            "module_digest must be sha256: followed by 64 lower-case hex digits",
            "/manifest/module_digest",
        )
    entrypoint = m["entrypoint"]
    if not isinstance(entrypoint, str) or not entrypoint.strip():
        return Rejection("invalid", "entrypoint must not be blank", "/manifest/entrypoint")
    if m["abi"] not in ABIS:
        return Rejection("invalid", f"abi must be one of {', '.join(ABIS)}", "/manifest/abi")
    seen: set[Any] = set()
    for i, model in enumerate(m["models"]):
        if not isinstance(model, str) or not model:
            return Rejection("invalid", "a model name must not be empty", f"/manifest/models/{i}")
        if model in seen:
            return Rejection("invalid", f"model {model} is listed twice", f"/manifest/models/{i}")
        seen.add(model)
    quotas = m["quotas"]
    for key, (low, high, _) in QUOTA_RULES.items():
        value = quotas.get(key)
        where = f"/manifest/quotas/{key}"
        if value is None:
            return Rejection("invalid", f"quotas.{key} is required", where)
        if not _is_int(value) or not low <= value <= high:
            least = "positive" if low == 1 else "zero or more"
            return Rejection("invalid", f"quotas.{key} must be an integer, {least}", where)
    seen = set()
    for i, capability in enumerate(m["capabilities"]):
        where = f"/manifest/capabilities/{i}"
        if capability not in CAPABILITIES:
            return Rejection("invalid", f"capability must be one of {CAPABILITIES}", where)
        if capability in seen:
            return Rejection("invalid", f"capability {capability} is listed twice", where)
        seen.add(capability)
    schema = m["input_schema"]
    if schema is not None:
        try:
            parsed = strict_json(schema) if isinstance(schema, str) else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return Rejection(
                "invalid",
                "input_schema must be a JSON Schema: JSON text of an object",
                "/manifest/input_schema",
            )
        problem = schema_problem(schema)
        if problem:
            return Rejection("invalid", problem, "/manifest/input_schema")
    if not isinstance(m["description"], str):
        return Rejection("invalid", "description must be a string", "/manifest/description")
    if not isinstance(m["index_outputs"], bool):
        where = "/manifest/index_outputs"
        return Rejection("invalid", "index_outputs must be true or false", where)
    return None


def check_against_context(
    manifest: dict[str, Any], tenant_id: str, context: Context
) -> Rejection | None:
    """Each model registered in the tenant, the module uploaded to it, each quota within the
    tenant's limits.

    The module's entry ("module", "<tenant>/<digest>") is put in the context by the stream
    processor, which asks the S3 store (I/O stays out of the decider); only modules that
    wasmtime validated are ever stored.
    """
    for i, model in enumerate(manifest["models"]):
        found = context.find("model", scoped_id(tenant_id, model))
        if found is None or found.get("status") != "registered":
            return Rejection(
                "not_found",
                f"model {model} is not registered in tenant {tenant_id}",
                f"/manifest/models/{i}",
            )
    module = context.find("module", scoped_id(tenant_id, manifest["module_digest"]))
    if module is None:
        return Rejection(
            "not_found",
            f"module {manifest['module_digest']} was not uploaded to tenant {tenant_id}",
            "/manifest/module_digest",
        )
    if module.get("import_problem"):
        return Rejection(
            "invalid",
            f"module {manifest['module_digest']}: {module['import_problem']}",
            "/manifest/module_digest",
        )
    tenant = context.find("tenant", tenant_id) or {}
    limits = tenant.get("limits") or {}
    for key, (_, _, limit_key) in QUOTA_RULES.items():
        if limit_key is None or not _is_int(limits.get(limit_key)):
            continue
        value, limit = manifest["quotas"][key], limits[limit_key]
        if value > limit:
            return Rejection(
                "invalid",
                f"quotas.{key} {value} exceeds the tenant's {limit_key} of {limit}",
                f"/manifest/quotas/{key}",
            )
    return None


def _aggregate_mismatch(command: Command, agent_name: str) -> Rejection | None:
    """The manifest's name must be the agent the command is addressed to (its partition key)."""
    addressed = command.addressed_elsewhere(agent_name)
    if addressed is not None:
        return Rejection(
            "invalid",
            f"manifest.agent_name {agent_name} does not match the agent addressed ({addressed})",
            "/manifest/agent_name",
        )
    return None


# --- decide / evolve --------------------------------------------------------------------------


def summary(state: AgentState) -> dict[str, Any]:
    """What other deciders (tasks, the orchestrator) see: the status and the whole manifest."""
    m = state.manifest
    return {
        "status": state.status,
        "version": state.version,
        "agent_version": m["version"] if m else None,
        "manifest": dict(m) if m else None,
    }


def decide(state: AgentState, command: Command, context: Context) -> Decision:
    if command.type in (DEPLOY, UPDATE):
        return _decide_manifest(state, command, context)
    if command.type == RETIRE:
        return _decide_retire(state, command)
    return Rejection("unsupported", f"the agent aggregate does not handle {command.type}")


def _decide_manifest(state: AgentState, command: Command, context: Context) -> Decision:
    raw = command.payload.get("manifest")
    invalid = check_manifest(raw)
    if invalid or not isinstance(raw, Mapping):
        return invalid or Rejection("invalid", "manifest must be an object", "/manifest")
    manifest = normalise_manifest(raw)
    name = manifest["agent_name"]
    mismatch = _aggregate_mismatch(command, name)
    if mismatch:
        return mismatch
    if command.type == DEPLOY and state.exists:
        return Rejection(
            "already_exists",
            f"agent {name} already exists ({state.status}); update it or pick another name",
            "/manifest/agent_name",
        )
    if command.type == UPDATE:
        if not state.exists:
            return Rejection("not_found", f"agent {name} does not exist", "/manifest/agent_name")
        if state.status == "retired":
            return Rejection("conflict", f"agent {name} is retired", "/manifest/agent_name")
    refused = check_against_context(manifest, str(command.envelope["tenant_id"]), context)
    if refused:
        return refused
    if command.type == DEPLOY:
        return [Event(DEPLOYED, {"agent_name": name, "manifest": manifest})]
    current = state.manifest["version"] if state.manifest else "0.0.0"
    if (parse_semver(manifest["version"]) or (0, 0, 0)) <= (parse_semver(current) or (0, 0, 0)):
        return Rejection(
            "conflict",
            f"version {manifest['version']} is not greater than the current {current}",
            "/manifest/version",
        )
    return [Event(UPDATED, {"agent_name": name, "manifest": manifest})]


def _decide_retire(state: AgentState, command: Command) -> Decision:
    reason = command.payload.get("reason") or ""
    if not isinstance(reason, str):
        return Rejection("invalid", "reason must be a string", "/reason")
    if not state.exists:
        return Rejection("not_found", "the agent does not exist")
    if state.status == "retired":
        return Rejection("conflict", f"agent {state.agent_name} is already retired")
    return [Event(RETIRED, {"agent_name": state.agent_name, "reason": reason})]


def evolve(state: AgentState, event: Event) -> AgentState:
    p = event.payload
    if event.type in (DEPLOYED, UPDATED):
        return replace(
            state,
            version=state.version + 1,
            agent_name=p["agent_name"],
            status="deployed" if event.type == DEPLOYED else state.status,
            manifest=normalise_manifest(p["manifest"]),
        )
    if event.type == RETIRED:
        return replace(
            state,
            version=state.version + 1,
            agent_name=p["agent_name"],
            status="retired",
            retired_reason=p.get("reason", ""),
        )
    return state  # DEPLOYMENT_REJECTED, CommandRejected and unknown events change nothing


aggregate = Aggregate(
    AGGREGATE,
    frozenset({DEPLOY, UPDATE, RETIRE}),
    AgentState,
    decide,
    evolve,
    summary=summary,
    tenant_scoped=True,
)
