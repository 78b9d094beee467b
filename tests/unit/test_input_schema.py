"""Declared input schemas: refused when invalid at deploy, enforced on every submitted task."""

from __future__ import annotations

import json
import threading
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


def manifest_with(input_schema: str) -> dict[str, Any]:
    return {
        "agent_name": "echo",
        "version": "1.0.0",
        "module_digest": "sha256:" + "0" * 64,
        "abi": "reactor",
        "quotas": {"fuel": 1, "memory_mb": 1, "timeout_ms": 1},
        "input_schema": input_schema,
    }


def test_deploying_an_agent_with_an_invalid_input_schema_is_refused() -> None:
    manifest = manifest_with('{"type": 12}')
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


# --- issue 17, finding 1: a hostile pattern must never stall a partition ----------------------

EVIL = json.dumps({"properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}})


def in_a_bounded_while(call: Any, seconds: float = 60) -> Any:
    """The call's result, or a failure if it has not returned after ``seconds``: a liveness
    bound on the attack (with backtracking, 2**100 steps never return), not a timing."""
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, "the input check did not return: catastrophic backtracking"
    return result[0]


def test_a_catastrophic_pattern_is_checked_in_linear_time() -> None:
    """The attack of the review: 27 'a's then '!' held the partition 5.4 s with ``re``, each
    further 'a' doubling it; here 100 of them, and a megabyte."""
    assert schema_problem(EVIL) is None  # RE2 runs it: accepted, and harmless
    problem = in_a_bounded_while(lambda: input_problem(EVIL, {"s": "a" * 100 + "!"}))
    assert problem is not None and "at /s" in problem and "does not match" in problem
    big = in_a_bounded_while(lambda: input_problem(EVIL, {"s": "a" * 1_000_000 + "!"}))
    assert big is not None
    assert input_problem(EVIL, {"s": "aaaa"}) is None


def test_patterns_of_property_names_run_on_re2_too() -> None:
    schema = json.dumps(
        {"patternProperties": {"^(a+)+$": {"type": "integer"}}, "additionalProperties": False}
    )
    key = "a" * 100 + "!"
    problem = in_a_bounded_while(lambda: input_problem(schema, {key: 1}))
    assert problem is not None and "do" in problem and "not match any of the regexes" in problem
    assert input_problem(schema, {"aaa": 1}) is None
    assert "is not of type 'integer'" in (input_problem(schema, {"aaa": "x"}) or "")


def test_a_pattern_re2_cannot_run_is_refused_at_deploy_naming_it() -> None:
    backreference = json.dumps({"properties": {"s": {"pattern": "(a+)\\1"}}})
    problem = schema_problem(backreference)
    assert problem is not None and "(a+)\\\\1" in problem and "/properties/s/pattern" in problem
    lookahead = json.dumps({"patternProperties": {"(?=x)y": {}}})
    assert "RE2" in (schema_problem(lookahead) or "")
    unevaluated = json.dumps({"patternProperties": {"^a": {}}, "unevaluatedProperties": False})
    assert "unevaluatedProperties" in (schema_problem(unevaluated) or "")
    # A property that is merely named "pattern" is not a pattern.
    assert schema_problem(json.dumps({"properties": {"pattern": {"type": "string"}}})) is None


def test_deploying_an_agent_whose_pattern_needs_backtracking_is_refused() -> None:
    manifest = manifest_with(json.dumps({"properties": {"s": {"pattern": "(a)\\1"}}}))
    refused = agent.check_manifest(manifest)
    assert isinstance(refused, Rejection)
    assert (refused.code, refused.field) == ("invalid", "/manifest/input_schema")
    assert "RE2" in refused.reason


def test_index_outputs_must_be_a_boolean() -> None:
    refused = agent.check_manifest({**manifest_with(SCHEMA), "index_outputs": "yes"})
    assert isinstance(refused, Rejection)
    assert (refused.code, refused.field) == ("invalid", "/manifest/index_outputs")
    assert agent.check_manifest({**manifest_with(SCHEMA), "index_outputs": True}) is None
