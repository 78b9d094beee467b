"""One endpoint per command, declared as data: path, Avro record, aggregate, where the ids are.

Each request body is validated against its command's Avro payload fields (the path parameters
named in ``from_path`` are merged into it first), so the schemas stay the only model.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.body import command_payload, read_json
from api.commands import CommandRequest, submit
from api.problems import Problem
from api.state import ApiState
from commands import policy, tenant
from commands.model import Rejection, scoped_id


@dataclass(frozen=True)
class CommandRoute:
    method: str
    path: str
    record: str
    aggregate: str
    summary: str
    # payload field -> path parameter: the path names it, the body may repeat it (same value)
    from_path: dict[str, str] = field(default_factory=dict)
    # where the aggregate's local id is: "body:<a>.<b>" or "path:<param>"; None: the tenant
    local_id: str | None = None
    # Location of the created resource (a format string over path params and payload)
    created: str | None = None
    # fields the API fills when the caller leaves them out
    generated: dict[str, Callable[[], Any]] = field(default_factory=dict)
    precheck: Callable[[dict[str, Any]], Rejection | None] | None = None
    # The OpenAPI operationId when not the record's name in snake case
    operation_id: str = ""


def _pick(where: str, payload: dict[str, Any], path: dict[str, str]) -> str:
    source, _, name = where.partition(":")
    if source == "path":
        return str(path[name])
    value: Any = payload
    for part in name.split("."):
        value = value[part]
    return str(value)


def _tenant_of(route: CommandRoute, payload: dict[str, Any], path: dict[str, str]) -> str:
    return str(payload["tenant_id"]) if route.record == tenant.CREATE else path["tenant"]


async def tenant_exists(state: ApiState, tenant_id: str) -> bool:
    """From the read model; a tenant once seen is remembered (tenants are never deleted)."""
    if tenant_id in state.known_tenants:
        return True
    async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("select 1 from tenants where tenant_id = %s", (tenant_id,))
        found = await cur.fetchone() is not None
    if found and len(state.known_tenants) < 100_000:
        state.known_tenants.add(tenant_id)
    return found


def prepare(route: CommandRoute, path: dict[str, str], body: Any) -> CommandRequest:
    """The command a request body makes on this route, or a Problem naming the bad field.
    Checks only the body (no I/O): the tenant's existence is the caller's next step."""
    if isinstance(body, dict):
        for payload_field, param in route.from_path.items():
            if payload_field in body and body[payload_field] != path[param]:
                raise Problem(
                    422,
                    "invalid-field",
                    "Invalid request body",
                    f"/{payload_field} must equal the path's {param}",
                    field=f"/{payload_field}",
                )
            body[payload_field] = path[param]
    made: set[str] = set()  # fields the API generated: not part of an idempotent retry's body
    if isinstance(body, dict):
        for name, make in route.generated.items():
            if name not in body:
                body[name] = make()
                made.add(name)
    payload = command_payload(route.record, body)
    rejection = route.precheck(payload) if route.precheck else None
    if rejection:
        raise Problem(
            422,
            "invalid-field",
            "Invalid request body",
            rejection.reason,
            field=rejection.field,
        )
    tenant_id = _tenant_of(route, payload, path)
    aggregate_id = (
        tenant_id
        if route.local_id is None
        else scoped_id(tenant_id, _pick(route.local_id, payload, path))
    )
    location = route.created.format(**path, **payload) if route.created else None
    return CommandRequest(
        route.record,
        tenant_id,
        route.aggregate,
        aggregate_id,
        payload,
        created_location=location,
        fingerprint_of={k: v for k, v in payload.items() if k not in made} if made else None,
    )


async def require_tenant(state: ApiState, command: CommandRequest) -> None:
    if command.record_name != tenant.CREATE and not await tenant_exists(state, command.tenant_id):
        raise Problem(
            404,
            "not-found",
            "Tenant not found",
            f"no tenant {command.tenant_id}",
            field="tenant",
        )


def endpoint(route: CommandRoute) -> Callable[[Request], Any]:
    async def handle(request: Request) -> Response:
        state: ApiState = request.app.state.api
        body = await read_json(request, state.settings.max_body_bytes)
        command = prepare(route, dict(request.path_params), body)
        await require_tenant(state, command)
        return await submit(request, command)

    handle.__name__ = f"command_{route.record.rsplit('.', 1)[-1]}"
    return handle


T = "/v1/tenants/{tenant}"
COMMAND_ROUTES = [
    CommandRoute(
        "POST",
        "/v1/tenants",
        tenant.CREATE,
        "tenant",
        "Create a tenant",
        created="/v1/tenants/{tenant_id}",
        precheck=tenant.check_create,
    ),
    CommandRoute(
        "POST",
        f"{T}/suspend",
        "aion.tenant.SuspendTenant",
        "tenant",
        "Suspend a tenant: it keeps reading but accepts no command",
    ),
    CommandRoute(
        "POST",
        f"{T}/reinstate",
        "aion.tenant.ReinstateTenant",
        "tenant",
        "Reinstate a suspended tenant",
    ),
    CommandRoute(
        "POST",
        f"{T}/users",
        "aion.tenant.AddUser",
        "tenant",
        "Add a user",
        created=T + "/users/{user_id}",
    ),
    CommandRoute(
        "PUT",
        f"{T}/users/{{user}}/roles",
        "aion.tenant.AssignRole",
        "tenant",
        "Replace a user's roles",
        from_path={"user_id": "user"},
        operation_id="assign_roles",
    ),
    CommandRoute(
        "DELETE",
        f"{T}/users/{{user}}",
        "aion.tenant.RemoveUser",
        "tenant",
        "Remove a user",
        from_path={"user_id": "user"},
    ),
    CommandRoute(
        "POST",
        f"{T}/models",
        "aion.model.RegisterModel",
        "model",
        "Register a model",
        local_id="body:model_name",
        created=T + "/models/{model_name}",
    ),
    CommandRoute(
        "POST",
        f"{T}/agents",
        "aion.agent.DeployAgent",
        "agent",
        "Deploy an agent from its manifest",
        local_id="body:manifest.agent_name",
        created=T + "/agents/{manifest[agent_name]}",
    ),
    CommandRoute(
        "PUT",
        f"{T}/agents/{{agent}}",
        "aion.agent.UpdateAgent",
        "agent",
        "Deploy a new version of an agent",
        local_id="path:agent",
    ),
    CommandRoute(
        "POST",
        f"{T}/agents/{{agent}}/retire",
        "aion.agent.RetireAgent",
        "agent",
        "Retire an agent: it takes no more tasks",
        local_id="path:agent",
    ),
    CommandRoute(
        "PUT",
        f"{T}/policies/{{policy}}",
        "aion.policy.PutPolicy",
        "policy",
        "Create or replace a Cedar policy",
        from_path={"policy_id": "policy"},
        local_id="path:policy",
        precheck=policy.check_policy_name,  # the platform's names are reserved (issue 17)
    ),
    CommandRoute(
        "DELETE",
        f"{T}/policies/{{policy}}",
        "aion.policy.DeletePolicy",
        "policy",
        "Delete a policy",
        from_path={"policy_id": "policy"},
        local_id="path:policy",
    ),
    CommandRoute(
        "POST",
        f"{T}/tasks",
        "aion.task.SubmitTask",
        "task",
        "Submit a task",
        local_id="body:task_id",
        created=T + "/tasks/{task_id}",
        generated={"task_id": lambda: str(uuid.uuid4())},
    ),
    CommandRoute(
        "POST",
        f"{T}/tasks/{{task}}/cancel",
        "aion.task.CancelTask",
        "task",
        "Cancel a task before it ends",
        local_id="path:task",
    ),
]


def routes() -> list[Route]:
    return [Route(r.path, endpoint(r), methods=[r.method]) for r in COMMAND_ROUTES]
