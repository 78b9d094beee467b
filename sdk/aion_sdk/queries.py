"""The read endpoints (read models in Postgres, Redis, Qdrant), sign-in and operations.

Every list and item takes ``after_command=<command id>`` (wait, up to 10 s, until the read
model holds that command's outcome: read your own writes) or ``after=<topic:partition:offset>``.
Lists take ``limit`` (1-200) and ``cursor``; the clients return pages that iterate on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import httpx

from aion_sdk.calls import Call, ListCall, get, listing, path, query
from aion_sdk.models import (
    Agent,
    AgentVersion,
    ApiKey,
    Artifact,
    AuditEntry,
    CommandBody,
    Enforcement,
    Model,
    Module,
    Policy,
    Readiness,
    Run,
    SearchResults,
    Session,
    Task,
    TaskStatus,
    Tenant,
    User,
)

T = "/v1/tenants/{tenant}"
REDIRECTS = frozenset({301, 302, 303, 307, 308})


def get_command(command_id: str) -> Call[CommandBody]:
    """A command's outcome (``accepted``/``rejected``), or ``pending`` with its position."""
    return get("/v1/commands/{command_id}", CommandBody, command_id=command_id)


def get_tenant(
    tenant: str, *, after_command: str | None = None, after: str | None = None
) -> Call[Tenant]:
    return get(T, Tenant, query(after_command=after_command, after=after), tenant=tenant)


def list_tenants(
    *,
    status: str | None = None,
    prefix: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> ListCall[Tenant]:
    """Every tenant, by id (platform admins only); ``prefix``: ids starting with it."""
    params = query(status=status, prefix=prefix, limit=limit, cursor=cursor)
    return listing("/v1/tenants", Tenant, params)


def list_users(
    tenant: str, *, limit: int | None = None, cursor: str | None = None
) -> ListCall[User]:
    """The tenant's users and roles, by user id."""
    return listing(T + "/users", User, query(limit=limit, cursor=cursor), tenant=tenant)


def get_module(tenant: str, digest: str) -> Call[Module]:
    """A stored module's size, by its digest ``sha256:<hex>``."""
    return get(T + "/modules/{digest}", Module, tenant=tenant, digest=digest)


def _list(
    template: str,
    item: type[Any],
    limit: int | None,
    cursor: str | None,
    after_command: str | None,
    after: str | None,
    path_params: dict[str, str],
    **filters: Any,
) -> ListCall[Any]:
    params = query(**filters, limit=limit, cursor=cursor, after_command=after_command,
                   after=after)  # fmt: skip
    return listing(template, item, params, **path_params)


def list_api_keys(
    tenant: str,
    *,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    after_command: str | None = None,
    after: str | None = None,
) -> ListCall[ApiKey]:
    """The tenant's API keys (never a secret)."""
    return _list(T + "/api-keys", ApiKey, limit, cursor, after_command, after,
                 {"tenant": tenant}, status=status)  # fmt: skip


def list_models(
    tenant: str,
    *,
    kind: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    after_command: str | None = None,
    after: str | None = None,
) -> ListCall[Model]:
    return _list(T + "/models", Model, limit, cursor, after_command, after, {"tenant": tenant},
                 kind=kind)  # fmt: skip


def get_model(
    tenant: str, model: str, *, after_command: str | None = None, after: str | None = None
) -> Call[Model]:
    params = query(after_command=after_command, after=after)
    return get(T + "/models/{model}", Model, params, tenant=tenant, model=model)


def list_agents(
    tenant: str,
    *,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    after_command: str | None = None,
    after: str | None = None,
) -> ListCall[Agent]:
    return _list(T + "/agents", Agent, limit, cursor, after_command, after, {"tenant": tenant},
                 status=status)  # fmt: skip


def get_agent(
    tenant: str, agent: str, *, after_command: str | None = None, after: str | None = None
) -> Call[Agent]:
    params = query(after_command=after_command, after=after)
    return get(T + "/agents/{agent}", Agent, params, tenant=tenant, agent=agent)


def list_agent_versions(
    tenant: str,
    agent: str,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    after_command: str | None = None,
    after: str | None = None,
) -> ListCall[AgentVersion]:
    """Every manifest the agent was deployed with, oldest first."""
    return _list(T + "/agents/{agent}/versions", AgentVersion, limit, cursor, after_command,
                 after, {"tenant": tenant, "agent": agent})  # fmt: skip


def list_policies(
    tenant: str,
    *,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    after_command: str | None = None,
    after: str | None = None,
) -> ListCall[Policy]:
    return _list(T + "/policies", Policy, limit, cursor, after_command, after,
                 {"tenant": tenant}, status=status)  # fmt: skip


def get_policy(
    tenant: str, policy: str, *, after_command: str | None = None, after: str | None = None
) -> Call[Policy]:
    params = query(after_command=after_command, after=after)
    return get(T + "/policies/{policy}", Policy, params, tenant=tenant, policy=policy)


def list_tasks(
    tenant: str,
    *,
    status: str | None = None,
    agent_name: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    after_command: str | None = None,
    after: str | None = None,
) -> ListCall[Task]:
    """The tenant's tasks, newest first."""
    return _list(T + "/tasks", Task, limit, cursor, after_command, after, {"tenant": tenant},
                 status=status, agent_name=agent_name)  # fmt: skip


def get_task(
    tenant: str, task: str, *, after_command: str | None = None, after: str | None = None
) -> Call[Task]:
    params = query(after_command=after_command, after=after)
    return get(T + "/tasks/{task}", Task, params, tenant=tenant, task=task)


def get_task_status(tenant: str, task: str) -> Call[TaskStatus]:
    """The task's hot status from Redis, cheap to poll (kept a day after the task ends)."""
    return get(T + "/tasks/{task}/status", TaskStatus, tenant=tenant, task=task)


def list_runs(
    tenant: str,
    task: str,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    after_command: str | None = None,
    after: str | None = None,
) -> ListCall[Run]:
    """The task's runs (attempts): status, fuel, duration, failure."""
    return _list(T + "/tasks/{task}/runs", Run, limit, cursor, after_command, after,
                 {"tenant": tenant, "task": task})  # fmt: skip


def list_artifacts(
    tenant: str,
    task: str,
    *,
    run_id: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    after_command: str | None = None,
    after: str | None = None,
) -> ListCall[Artifact]:
    """Outputs, logs and files of the task's runs (the output's ``artifact_id`` is
    ``output``)."""
    return _list(T + "/tasks/{task}/artifacts", Artifact, limit, cursor, after_command, after,
                 {"tenant": tenant, "task": task}, run_id=run_id)  # fmt: skip


def _content(response: httpx.Response) -> bytes:
    return response.content


def download_artifact(tenant: str, task: str, run: str, artifact: str) -> Call[bytes]:
    """An artifact's bytes (streamed from the S3 store by the API)."""
    template = T + "/tasks/{task}/runs/{run}/artifacts/{artifact}"
    target = path(template, tenant=tenant, task=task, run=run, artifact=artifact)
    return Call("GET", target, _content, safe=True)


def list_enforcements(
    tenant: str,
    *,
    decision: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    after_command: str | None = None,
    after: str | None = None,
) -> ListCall[Enforcement]:
    """Policy decisions, newest first."""
    return _list(T + "/enforcements", Enforcement, limit, cursor, after_command, after,
                 {"tenant": tenant}, decision=decision, subject_type=subject_type,
                 subject_id=subject_id)  # fmt: skip


def list_audit(
    tenant: str,
    *,
    actor: str | None = None,
    kind: str | None = None,
    outcome: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    after_command: str | None = None,
    after: str | None = None,
) -> ListCall[AuditEntry]:
    """The audit log, newest first; ``since`` (inclusive) and ``until`` (exclusive) are ISO
    8601 times."""
    return _list(T + "/audit", AuditEntry, limit, cursor, after_command, after,
                 {"tenant": tenant}, actor=actor, kind=kind, outcome=outcome, since=since,
                 until=until)  # fmt: skip


def search(
    tenant: str, q: str, *, kind: str | Sequence[str] | None = None, limit: int | None = None
) -> Call[SearchResults]:
    """Semantic search over the tenant's agents (``kind="agent"``) and run outputs
    (``"run_output"``); 503 Unavailable when the API cannot open its vector store."""
    kinds = [kind] if isinstance(kind, str) else None if kind is None else list(kind)
    return get(T + "/search", SearchResults, query(q=q, kind=kinds, limit=limit), tenant=tenant)


def _counters(response: httpx.Response) -> dict[str, int]:
    return {str(k): int(v) for k, v in response.json().items()}


def get_counters(tenant: str) -> Call[dict[str, int]]:
    """Tasks submitted, succeeded, failed, ...; runs started (from Redis)."""
    return Call("GET", path(T + "/counters", tenant=tenant), _counters, safe=True)


def _location(response: httpx.Response) -> str:
    return str(response.headers.get("location", ""))


def auth_login(return_to: str | None = None) -> Call[str]:
    """Browser sign-in, step one: the issuer's authorization URL to send a browser to."""
    return Call("GET", "/auth/login", _location, query(return_to=return_to), safe=True,
                accept=REDIRECTS)  # fmt: skip


def auth_callback(code: str, state: str) -> Call[str]:
    """The issuer's redirect, replayed: the API sets the ``aion_session`` cookie (kept in the
    client's cookie jar) and answers with where to go next."""
    return Call("GET", "/auth/callback", _location, query(code=code, state=state),
                accept=REDIRECTS)  # fmt: skip


def _nothing(response: httpx.Response) -> None:
    return None


def auth_logout() -> Call[None]:
    return Call("POST", "/auth/logout", _nothing, safe=True, accept=REDIRECTS)


def auth_session() -> Call[Session]:
    """Who the session cookie signs in (401 Unauthorized if none)."""
    return get("/auth/session", Session)


def healthz() -> Call[dict[str, Any]]:
    return Call("GET", "/healthz", lambda r: dict(r.json()), safe=True)


def readyz() -> Call[Readiness]:
    """Readiness with each check's answer; a 503 (not ready) is an answer here, not an error,
    and is not retried."""
    return Call("GET", "/readyz", lambda r: cast(Readiness, r.json()), safe=True,
                accept=frozenset({503}))  # fmt: skip


def health() -> Call[dict[str, Any]]:
    """The operator's view: each service, projection and consumer-group lag, dead letters."""
    return Call("GET", "/health", lambda r: dict(r.json()), safe=True)


def metrics() -> Call[str]:
    """The Prometheus exposition text."""
    return Call("GET", "/metrics", lambda r: r.text, safe=True)


def openapi() -> Call[dict[str, Any]]:
    """The OpenAPI 3.1 document the API serves."""
    return Call("GET", "/openapi.json", lambda r: dict(r.json()), safe=True)
