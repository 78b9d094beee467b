"""`POST /v1/tenants/{tenant}/tasks/batch`: up to 1,000 task submissions in one request.

Each item is checked on its own, exactly as `POST .../tasks` would check it; the valid ones
become SubmitTask commands produced together (one await for all the broker acks), the invalid
ones are answered with their problem, by index. Nothing waits for the deciders: the answer is
202 with one command id per accepted item. A retry is safe when the items name their
`task_id` (a second SubmitTask for the same task is refused by its decider); `Idempotency-Key`
is not supported here.

An item whose command Kafka did not acknowledge is answered 503 by index, with its `task_id`
(made by the server when the item named none) and `Retry-After`, beside the items that were
sent: a retry sends those items again with those ids, and never duplicates a task that was
accepted (issue 17, finding 14). Only when no item was sent is the whole answer a 503.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aion.ids import new_id
from api.body import read_json
from api.command_routes import COMMAND_ROUTES, prepare, require_tenant
from api.commands import CommandRequest, actor_of, produce, roles_of
from api.problems import Problem
from api.state import ApiState
from streams import failpoints

log = logging.getLogger(__name__)

PATH = "/v1/tenants/{tenant}/tasks/batch"
MAX_ITEMS = 1000
SUBMIT = next(r for r in COMMAND_ROUTES if r.record == "aion.task.SubmitTask")
RETRY_AFTER_SECONDS = 1


def _items(body: Any) -> list[Any]:
    tasks = body.get("tasks") if isinstance(body, dict) else None
    if not isinstance(tasks, list) or not tasks:
        raise Problem(
            422,
            "invalid-field",
            "Invalid request body",
            "tasks must be a non-empty array",
            field="/tasks",
        )
    if len(tasks) > MAX_ITEMS:
        raise Problem(
            422,
            "invalid-field",
            "Invalid request body",
            f"at most {MAX_ITEMS} tasks per batch, got {len(tasks)}",
            field="/tasks",
        )
    return tasks


async def submit_batch(request: Request) -> Response:
    state: ApiState = request.app.state.api
    if request.headers.get("idempotency-key") is not None:
        raise Problem(
            400,
            "invalid-header",
            "Idempotency-Key is not supported on batches",
            "name each item's task_id instead: a task submitted twice is refused the second time",
            field="Idempotency-Key",
        )
    body = await read_json(request, state.settings.max_batch_bytes)
    path = dict(request.path_params)
    answers: list[dict[str, Any]] = []
    prepared: list[tuple[int, CommandRequest]] = []
    for index, item in enumerate(_items(body)):
        try:
            prepared.append((index, prepare(SUBMIT, path, item)))
        except Problem as problem:
            answer = problem.body()
            if problem.field is not None and problem.field.startswith("/"):
                answer["field"] = f"/tasks/{index}{problem.field}"
            answers.append({"index": index, "status": problem.status, "problem": answer})
    if prepared:
        await require_tenant(state, prepared[0][1])
    actor, roles = actor_of(request), roles_of(request)
    ids = [new_id() for _ in prepared]
    positions = await asyncio.gather(
        *(
            produce_item(state, command, command_id, actor, roles)
            for (_, command), command_id in zip(prepared, ids, strict=True)
        ),
        return_exceptions=True,
    )
    sent = 0
    for (index, command), command_id, position in zip(prepared, ids, positions, strict=True):
        if isinstance(position, BaseException):
            answers.append(unsent(index, command, position))
            continue
        sent += 1
        answers.append(
            {
                "index": index,
                "status": 202,
                "task_id": command.payload["task_id"],
                "command_id": command_id,
                "status_url": f"/v1/commands/{command_id}",
                "position": position,
            }
        )
    answers.sort(key=lambda a: int(a["index"]))
    if not prepared:
        raise Problem(
            422,
            "invalid-field",
            "Invalid request body",
            "no task in the batch is valid",
            field="/tasks",
            errors=[
                {"field": a["problem"].get("field", ""), "message": a["problem"]["detail"]}
                for a in answers
            ],
        )
    body = {"accepted": sent, "refused": len(answers) - sent, "items": answers}
    if sent == 0:  # valid items, none of them sent: the whole request is to be retried
        return JSONResponse(
            {**body, **unavailable().body()},
            status_code=503,
            media_type="application/problem+json",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return JSONResponse(body, status_code=202)


async def produce_item(
    state: ApiState, command: CommandRequest, command_id: str, actor: str, roles: list[str]
) -> dict[str, Any]:
    """One item's SubmitTask, sent; the failpoint ``unsent-batch-items`` fails the items whose
    task id starts with ``unsent-``, as if Kafka had not acknowledged them."""
    if failpoints.active("unsent-batch-items") and str(command.payload["task_id"]).startswith(
        "unsent-"
    ):
        raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "failpoint unsent-batch-items"))
    return await produce(state, command, command_id, None, None, actor, roles)


def unavailable(detail: str = "Kafka did not acknowledge the command") -> Problem:
    return Problem(
        503,
        "unavailable",
        "Not accepted",
        f"{detail}; send this item again with the same task_id",
    )


def unsent(index: int, command: CommandRequest, error: BaseException) -> dict[str, Any]:
    """The answer of an item whose command was not acknowledged: its task id, to retry with."""
    log.warning("batch item %d not sent: %s", index, error)
    answer = unavailable(f"Kafka did not acknowledge the command ({error})").body()
    answer["retry_after"] = RETRY_AFTER_SECONDS
    return {
        "index": index,
        "status": 503,
        "task_id": command.payload["task_id"],
        "problem": answer,
    }


def routes() -> list[Route]:
    return [Route(PATH, submit_batch, methods=["POST"])]
