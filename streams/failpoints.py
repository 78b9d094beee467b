"""Failpoints: named places where a worker can be made to die, to prove crash safety.

`AION_FAILPOINTS=after-produce` makes the command processor exit abruptly right after the
broker acknowledged a command's events, before the aggregate's state is saved and before the
input offset is committed: the worst moment for at-least-once processing. Used by the crash
tests; unset in production, where `hit` is a dictionary lookup that finds nothing.

A failpoint may be narrowed to one command type: `after-produce@aion.tenant.CreateTenant`
fires only for that command (other traffic, such as kernel reports or timer Ticks, passes).
"""

from __future__ import annotations

import os

ACTIVE = frozenset(filter(None, os.environ.get("AION_FAILPOINTS", "").split(",")))


def hit(name: str, command_type: str = "") -> None:
    if name in ACTIVE or f"{name}@{command_type}" in ACTIVE:
        os._exit(86)  # no clean-up, no flush, no commit: like a kill -9
