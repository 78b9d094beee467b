"""Values as Postgres can store them.

Postgres refuses the NUL character in text and in jsonb, and an event carrying one (a label or
a reason sent as "\\u0000") would otherwise stop the whole projection on every retry. It
becomes U+FFFD, the replacement character, so the rest of the event is kept.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


def storable(value: Any) -> Any:
    """``value`` with NUL replaced in every string, dict key and list item."""
    if isinstance(value, str):
        return value.replace("\x00", REPLACEMENT) if "\x00" in value else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value
