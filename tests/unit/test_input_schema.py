"""Declared input schemas: refused when invalid at deploy, enforced on every submitted task."""

from __future__ import annotations

import json
from typing import Any

from commands import agent, task
from commands.input_schema import input_problem, schema_problem
from commands.model import Command, Context, Rejection, scoped_id

SCHEMA = json.dumps(
    {
        "type": "object",
        "required": ["text"],
        "properties": {"text": {"type": "string", "maxLength": 5}},
        "additionalProperties": False,
    }
)


def test_a_valid_schema_has_no_problem_and_a_broken_one_says_why() -> None:
    assert schema_problem(SCHEMA) is None
    problem = schema_problem('{"type": "nonsense"}')
    assert problem is not None and problem.startswith("input_schema is not a valid JSON Schema")


def test_input_problems_name_the_path() -> None:
    assert input_problem(SCHEMA, {"text": "hi"}) is None
    assert input_problem(SCHEMA, {"text": "far too long"}) == (
        "input does not match the agent's input_schema at /text: 'far too long' is too long"
    )
    missing = input_problem(SCHEMA, {})
    assert missing is not None and "at /: 'text' is a required property" in missing


def test_deploying_an_agent_with_an_invalid_input_schema_is_refused() -> None:
    manifest = {
        "agent_name": "echo",
        "version": "1.0.0",
        "module_digest": "sha256:" + "0" * 64,
        "abi": "reactor",
        "quotas": {"fuel": 1, "memory_mb": 1, "timeout_ms": 1},
        "input_schema": '{"type": 12}',
    }
    refused = agent.check_manifest(manifest)
    assert isinstance(refused, Rejection)
    assert (refused.code, refused.field) == ("invalid", "/manifest/input_schema")
    assert agent.check_manifest({**manifest, "input_schema": SCHEMA}) is None


def submit(text: str) -> Any:
    summary = {"status": "deployed", "version": 1, "agent_version": "1.0.0",
               "manifest": {"input_schema": SCHEMA}}  # fmt: skip
    directory = {("tenant", "acme"): {"status": "active"},
                 ("agent", scoped_id("acme", "echo")): summary}  # fmt: skip
    context = Context(now_ms=1, lookup=lambda kind, key: directory.get((kind, key)))
    envelope = {"command_id": "c", "tenant_id": "acme", "aggregate_id": "acme/t-1"}
    payload = {"task_id": "t-1", "agent_name": "echo", "input": text}
    return task.aggregate.handle(task.aggregate.initial(), Command(task.SUBMIT, envelope, payload),
                                 context)  # fmt: skip


def test_a_task_whose_input_breaks_the_schema_is_refused_at_submit() -> None:
    refused = submit('{"text": "far too long"}')
    assert isinstance(refused, Rejection)
    assert (refused.code, refused.field) == ("invalid", "/input")
    assert "at /text" in refused.reason
    accepted = submit('{"text": "ok"}')
    assert isinstance(accepted, list) and accepted[0].type == task.SUBMITTED
