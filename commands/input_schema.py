"""Agents' declared input schemas (JSON Schema, draft 2020-12 unless ``$schema`` says otherwise).

A schema is checked when the agent is deployed, and every task's input against it when the task
is submitted, so that a malformed input is refused at the door with the path of the problem
rather than failing later inside the sandbox. Remote ``$ref``s are never fetched.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> Validator:
    import json

    schema = json.loads(schema_text)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


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
