"""Failpoints: named places where a worker can be made to die, to prove crash safety.

`AION_FAILPOINTS=after-produce` makes the command processor exit abruptly right after the
broker acknowledged a command's events, before the aggregate's state is saved and before the
input offset is committed: the worst moment for at-least-once processing. Used by the crash
tests; unset in production, where `hit` is a dictionary lookup that finds nothing.

A failpoint may be narrowed to one command type: `after-produce@aion.tenant.CreateTenant`
fires only for that command (other traffic, such as kernel reports or timer Ticks, passes).

Some failpoints force a fault instead of a crash: `unencodable@<command type>` makes the
command processor hand the encoder a value that does not fit its schema (``active``), a value
no decider produces, to prove that such a command is rejected and its partition goes on.
`facts-unreachable@<type>` makes the module facts' S3 lookup raise a connection error twice
(then it heals), `facts-broken@<type>` raise a RuntimeError every time: the command processor
waits out the first, and rejects the command of the second with ``internal_error``.
`kernel-run@<agent name>` makes a kernel worker exit as it starts a run of that agent: a
dispatch that kills every worker that takes it (``streams/kernel_crashes.py``).
"""

from __future__ import annotations

import os
from collections import Counter

ACTIVE = frozenset(filter(None, os.environ.get("AION_FAILPOINTS", "").split(",")))
_FIRED: Counter[str] = Counter()


def active(name: str, command_type: str = "") -> bool:
    return name in ACTIVE or f"{name}@{command_type}" in ACTIVE


def hit(name: str, command_type: str = "") -> None:
    if active(name, command_type):
        os._exit(86)  # no clean-up, no flush, no commit: like a kill -9


def fires(name: str, command_type: str = "", times: int | None = None) -> bool:
    """True when the failpoint is active, for its first ``times`` hits in this process (every
    hit when None): a fault that heals, such as a server that answers again."""
    if not active(name, command_type):
        return False
    _FIRED[name] += 1
    return times is None or _FIRED[name] <= times
