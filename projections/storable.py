"""Values as Postgres can store them.

Postgres refuses the NUL character in text and in jsonb, and an event carrying one (a label or
a reason sent as "\\u0000") would otherwise stop the whole projection on every retry. It
becomes U+FFFD, the replacement character, so the rest of the event is kept.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


def storable(value: Any) -> Any:
    """``value`` with NUL replaced in every string, dict key and list item (``value`` itself
    when it has none: ``repr``, in C, finds that faster than a walk in Python)."""
    if "\\x00" not in repr(value):
        return value
    return _replaced(value)


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", REPLACEMENT) if "\x00" in value else value
    if isinstance(value, dict):
        return {_replaced(k): _replaced(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replaced(v) for v in value]
    return value
