"""What a read may wait for (issue 17, finding 2): a target that can never be reached is a 422
naming its parameter, before anything waits or reaches the database."""

from __future__ import annotations

import pytest

from api.problems import Problem
from api.read_targets import AfterCommand, AfterPosition, read_target
from schemas.topics import AUDIT, events_topic

TASKS = events_topic("task")


def test_a_command_or_a_position_or_nothing() -> None:
    assert read_target({}) is None
    assert read_target({"after_command": ""}) is None
    assert read_target({"after_command": "c-1"}) == AfterCommand("c-1")
    assert read_target({"after": f"{TASKS}:3:42"}) == AfterPosition(TASKS, 3, 42)
    assert read_target({"after": f"{AUDIT}:0:0"}) == AfterPosition(AUDIT, 0, 0)
    both = {"after_command": "c-1", "after": f"{TASKS}:3:42"}
    assert read_target(both) == AfterCommand("c-1")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "nonsense"}, "after"),
        ({"after": f"{TASKS}:x:1"}, "after"),
        ({"after": f"{TASKS}:\u00b2:1"}, "after"),  # a digit to str.isdigit, not to int()
        ({"after": "aion.commands:0:1"}, "after"),  # the read model does not follow it
        ({"after": f"{TASKS}:{2**31}:1"}, "after"),
        ({"after": f"{TASKS}:0:{2**63}"}, "after"),
        ({"after_command": "a\x00b"}, "after_command"),
        ({"after_command": "c" * 201}, "after_command"),
    ],
)
def test_an_unreachable_target_is_a_422(params: dict[str, str], field: str) -> None:
    with pytest.raises(Problem) as refused:
        read_target(params)
    assert (refused.value.status, refused.value.field) == (422, field)
