"""Agents' declared input schemas (JSON Schema, draft 2020-12 unless ``$schema`` says otherwise).

A schema is checked when the agent is deployed, and every task's input against it when the task
is submitted, so that a malformed input is refused at the door with the path of the problem
rather than failing later inside the sandbox. Remote ``$ref``s are never fetched.

Patterns run on RE2, which matches in time linear in the input: Python's ``re`` backtracks, and
a hostile ``"pattern": "^(a+)+$"`` held a tenant's partition for seconds per task (issue 17).
The keywords that match a regex against the input (``pattern``, ``patternProperties`` and the
``additionalProperties`` that depends on them) are jsonschema's own with RE2 in place of
``re``. A schema RE2 cannot run (backreferences, lookaround) is refused at deploy, naming the
pattern; so is ``unevaluatedProperties`` beside ``patternProperties``, whose matching
jsonschema does with ``re`` internally.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import jsonschema
import re2
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator

_QUIET = re2.Options()
_QUIET.log_errors = False  # a refused pattern is our answer, not a line on stderr


class UnsupportedPattern(ValueError):
    """A pattern RE2 cannot compile (it would need backtracking)."""


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _QUIET)
    except re2.error as exc:
        raise UnsupportedPattern(pattern) from exc


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _regex(patrn).search(instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _regex(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _extras(instance: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    properties = schema.get("properties", {})
    patterns = [_regex(p) for p in schema.get("patternProperties", {})]
    return {
        key
        for key in instance
        if key not in properties and not any(p.search(key) for p in patterns)
    }


def _additional_properties(
    validator: Any, allowed: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = _extras(instance, schema)
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        names = ", ".join(repr(each) for each in sorted(extras))
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield ValidationError(f"{names} {verb} not match any of the regexes: {patterns}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({names} {verb} unexpected)"
            )


RE2_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}


def _walk(node: Any, pointer: str = "") -> Iterator[tuple[str, str, Any]]:
    """(JSON pointer, key, value) of every member of every object in the schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{pointer}/{key}"
            yield here, key, value
            yield from _walk(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{pointer}/{index}")


def _unsupported(schema: Any) -> str | None:
    """Why RE2 cannot run this schema's patterns, or None."""
    uses = {key for _, key, _ in _walk(schema)}
    if "unevaluatedProperties" in uses and "patternProperties" in uses:
        return "unevaluatedProperties beside patternProperties is not supported"
    for pointer, key, value in _walk(schema):
        patterns = [value] if key == "pattern" and isinstance(value, str) else []
        if key == "patternProperties" and isinstance(value, dict):
            patterns = list(value)
        for pattern in patterns:
            try:
                _regex(pattern)
            except UnsupportedPattern:
                return (
                    f"the pattern {pattern!r} at {pointer} is not supported: patterns run on"
                    " RE2 (no backreferences or lookaround)"
                )
    return None


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> Validator:
    schema = json.loads(schema_text)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    unsupported = _unsupported(schema)
    if unsupported:
        raise SchemaError(unsupported)
    safe = jsonschema.validators.extend(cls, RE2_KEYWORDS)
    return safe(schema)


def schema_problem(schema_text: str) -> str | None:
    """Why the text is not a usable JSON Schema, or None."""
    try:
        _validator(schema_text)
    except SchemaError as exc:
        return f"input_schema is not a valid JSON Schema: {exc.message}"
    return None


def input_problem(schema_text: str, value: Any) -> str | None:
    """The first reason ``value`` does not match the schema (with its JSON pointer), or None."""
    error = jsonschema.exceptions.best_match(_validator(schema_text).iter_errors(value))
    if error is None:
        return None
    where = "".join(f"/{part}" for part in error.absolute_path) or "/"
    return f"input does not match the agent's input_schema at {where}: {error.message}"
