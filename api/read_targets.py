"""What a read asks to wait for: ``?after_command=<command id>`` or
``?after=<topic:partition:offset>``, checked before anything waits.

A target that can never be reached (a topic the read model does not follow, an offset no
``bigint`` holds, an id with a NUL the database refuses) is a 422 naming its parameter, never a
ten-second wait or a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from api.problems import Problem
from schemas.topics import AUDIT, EVENTS_PREFIX, TOPICS

# The topics whose positions the core projection checkpoints (projections/core.py: every
# events topic, and the audit topic).
FOLLOWED = (*(t.name for t in TOPICS if t.name.startswith(EVENTS_PREFIX)), AUDIT)
MAX_COMMAND_ID = 200  # an Idempotency-Key is at most 200 characters; ids are shorter
MAX_PARTITION = 2**31  # projection_checkpoints.partition is an integer
MAX_OFFSET = 2**63  # and next_offset a bigint


@dataclass(frozen=True)
class AfterCommand:
    command_id: str
    parameter: str = "after_command"


@dataclass(frozen=True)
class AfterPosition:
    topic: str
    partition: int
    offset: int
    parameter: str = "after"


ReadTarget = AfterCommand | AfterPosition


def _invalid(name: str, detail: str) -> Problem:
    return Problem(422, "invalid-parameter", "Invalid query parameter", detail, field=name)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # "²".isdigit(), but int("²") fails


def command_target(raw: str) -> AfterCommand:
    if not raw.isprintable() or not 0 < len(raw) <= MAX_COMMAND_ID:
        raise _invalid(
            "after_command",
            f"after_command must be a command id: 1 to {MAX_COMMAND_ID} printable characters",
        )
    return AfterCommand(raw)


def position_target(raw: str) -> AfterPosition:
    """``topic:partition:offset`` (an event's position, as GET /v1/commands/{id} shows it)."""
    topic, _, offset = raw.rpartition(":")
    topic, _, partition = topic.rpartition(":")
    if not topic or not _digits(partition) or not _digits(offset):
        raise _invalid("after", "after must be an event position topic:partition:offset")
    if topic not in FOLLOWED:
        raise _invalid("after", f"after must name a topic the read model follows: {topic}")
    if int(partition) >= MAX_PARTITION or int(offset) >= MAX_OFFSET:
        raise _invalid("after", "after names a partition or an offset out of range")
    return AfterPosition(topic, int(partition), int(offset))


def read_target(params: Mapping[str, str]) -> ReadTarget | None:
    """The target of a read's query string; ``after_command`` wins when both are given."""
    if params.get("after_command"):
        return command_target(params["after_command"])
    if params.get("after"):
        return position_target(params["after"])
    return None
