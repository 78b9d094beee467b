"""How long an HTTP response may be kept, from its Cache-Control, within a floor and a ceiling.

Used for the OIDC issuer's discovery document and JWKS: the issuer says how long its keys hold
(``max-age``, less the ``Age`` a cache in between already spent), the floor keeps a
``no-store`` or ``max-age=0`` issuer from being fetched on every request, and the ceiling
bounds how long a key the issuer removed is still trusted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping


def max_age(cache_control: str) -> float | None:
    """The ``max-age`` directive in seconds; 0 for ``no-store``/``no-cache``; None if absent
    or malformed."""
    found: float | None = None
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return 0.0
        if name == "max-age":
            try:
                found = max(0.0, float(int(value.strip().strip('"'))))
            except ValueError:
                return None
    return found


def lifetime(headers: Mapping[str, str], default_s: float, min_s: float, max_s: float) -> float:
    """Seconds to keep a response with these headers."""
    seconds = max_age(headers.get("cache-control", ""))
    if seconds is None:
        seconds = default_s
    else:
        with contextlib.suppress(ValueError):  # a malformed Age is ignored
            seconds -= max(0, int(headers.get("age", "0")))
    return min(max(seconds, min_s), max_s)
