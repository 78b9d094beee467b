"""The shapes of the API's main answers, as TypedDicts (plain dicts at run time).

They follow the read models' columns (api/queries.py) and the command answers
(api/commands.py). ``total=False``: a field the server adds later does not break a caller,
and one it leaves out is not promised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict


class Position(TypedDict):
    topic: str
    partition: int
    offset: int


class CommandBody(TypedDict, total=False):
    """A command's answer: 202 ``pending`` with ``status_url`` and ``position``, or (when
    waited for) the outcome, ``accepted`` with ``aggregate_version`` and ``event_ids``."""

    command_id: str
    status: str
    status_url: str
    position: Position
    command_type: str
    tenant_id: str
    aggregate_type: str
    aggregate_id: str
    code: str | None
    reason: str | None
    field: str | None
    aggregate_version: int | None
    event_ids: list[str]
    decided_at: str
    event_position: Position
    key_id: str  # CreateApiKey only
    api_key: str  # CreateApiKey only, on the first answer: shown this once


@dataclass(frozen=True)
class CommandResult:
    """A command's answer with what its headers said.

    ``decided``: the outcome is in ``body`` (the call waited and the decider answered in
    time); else ``body`` is the 202 and ``GET /v1/commands/{command_id}`` will tell.
    ``replayed``: the API returned the first response of this Idempotency-Key.
    """

    http_status: int
    body: CommandBody
    idempotency_key: str | None
    replayed: bool
    location: str | None
    task_id: str | None = None  # submit_task: the task's id (given, or made by the SDK)

    @property
    def command_id(self) -> str:
        return self.body["command_id"]

    @property
    def status(self) -> str:
        return self.body.get("status", "pending")

    @property
    def decided(self) -> bool:
        return self.http_status in (200, 201)


class Tenant(TypedDict, total=False):
    tenant_id: str
    display_name: str
    labels: dict[str, str]
    limits: dict[str, Any]
    status: str
    suspension_reason: str | None
    version: int
    created_at: str
    updated_at: str


class User(TypedDict, total=False):
    user_id: str
    display_name: str
    roles: list[str]
    added_at: str


class Model(TypedDict, total=False):
    model_name: str
    provider: str
    kind: str
    parameters: dict[str, str]
    description: str
    status: str
    version: int
    created_at: str
    updated_at: str


class Agent(TypedDict, total=False):
    agent_name: str
    status: str
    agent_version: str
    manifest: dict[str, Any]
    description: str
    labels: dict[str, str]
    version: int
    retired_reason: str | None
    created_at: str
    updated_at: str


class AgentVersion(TypedDict, total=False):
    agent_version: str
    manifest: dict[str, Any]
    module_digest: str
    deployed_at: str


class Policy(TypedDict, total=False):
    policy_id: str
    cedar: str
    description: str
    status: str
    policy_version: int
    version: int
    created_at: str
    updated_at: str


class Task(TypedDict, total=False):
    task_id: str
    agent_name: str
    agent_version: str
    status: str
    input: str
    input_bytes: int
    labels: dict[str, str]
    deadline_ms: int | None
    submitted_by: str | None
    enforcement_id: str | None
    attempt: int
    run_id: str | None
    output_digest: str | None
    reason: str | None
    version: int
    submitted_at: str
    updated_at: str
    finished_at: str | None


class TaskStatus(TypedDict, total=False):
    task_id: str
    status: str
    version: int
    attempt: int
    run_id: str | None
    updated_at: str | None


class Run(TypedDict, total=False):
    run_id: str
    attempt: int
    status: str
    worker: str | None
    output_digest: str | None
    output_bytes: int | None
    fuel_used: int | None
    duration_ms: int | None
    failure_reason: str | None
    failure_message: str | None
    progress_percent: float | None
    progress_message: str | None
    scheduled_at: str | None
    started_at: str | None
    finished_at: str | None


class Artifact(TypedDict, total=False):
    run_id: str
    artifact_id: str
    digest: str
    size_bytes: int
    content_type: str
    stored_at: str


class Enforcement(TypedDict, total=False):
    enforcement_id: str
    subject_type: str
    subject_id: str
    action: str
    decision: str
    policy_ids: list[str]
    diagnostics: Any
    decided_at: str


class AuditEntry(TypedDict, total=False):
    occurred_at: str
    actor: str
    kind: str
    action: str
    target: str
    outcome: str
    command_id: str | None
    event_id: str | None
    detail: Any
    position: str


class ApiKey(TypedDict, total=False):
    key_id: str
    name: str
    roles: list[str]
    status: str
    rate_per_s: float | None
    burst: int | None
    expires_at: str | None
    revoked_reason: str | None
    created_by: str
    version: int
    created_at: str
    updated_at: str


class Module(TypedDict, total=False):
    """An uploaded module (``location`` on upload) or a stored one (``stored_at``)."""

    digest: str
    size: int
    location: str
    stored_at: str | None


class SearchResults(TypedDict, total=False):
    items: list[dict[str, Any]]  # kind, id, score and the hit's fields
    embedder: str


class BatchItem(TypedDict, total=False):
    index: int
    status: int
    task_id: str
    command_id: str
    status_url: str
    position: Position
    problem: dict[str, Any]


class BatchResult(TypedDict, total=False):
    accepted: int
    refused: int
    items: list[BatchItem]


class Readiness(TypedDict, total=False):
    ready: bool
    checks: dict[str, str]
    projection_lag: Any


class Session(TypedDict, total=False):
    subject: str
    tenant: str | None
    roles: list[str]
