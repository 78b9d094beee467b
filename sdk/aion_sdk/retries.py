"""When to retry and how long to wait: pure functions, no I/O, so that they are tested alone.

Only answers that say "nothing was done, come back later" are retried: 429 (a token bucket was
empty; the API takes nothing from any bucket), 503 (a service it needs is down) and a 409 that
names a ``Retry-After`` (the first request with this Idempotency-Key is still in flight). Their
``Retry-After`` is honoured, in seconds or as an HTTP-date; without it the wait grows
exponentially with jitter, capped. A connection error is retried when the request never left
(nothing was sent), or when repeating it is harmless: an idempotent method, or a command that
carries an ``Idempotency-Key`` (the API answers a repeat with the first response).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({429, 503})
IN_FLIGHT = 409  # with Retry-After: an Idempotency-Key whose first request is in flight
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: ``"3"``, ``"1.5"`` or an HTTP-date
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``); a date in the past is 0; anything else is None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long: ``max_retries`` retries after the first attempt.

    A ``Retry-After`` longer than ``max_retry_after`` is not slept through (the error is raised
    with ``retry_after`` set), so that a client never hangs silently for minutes.
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0
    jitter: bool = True

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``retry`` (1 for the first) when the server named none:
        base * 2^(retry-1), capped at ``backoff_max``; with jitter, a random point in the upper
        half of that (so that many clients refused together do not come back together)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** max(0, retry - 1))
        return ceiling * (0.5 + rand() / 2) if self.jitter else ceiling

    def retries_status(self, status: int, retry_after: float | None = None) -> bool:
        return status in RETRY_STATUSES or (status == IN_FLIGHT and retry_after is not None)

    def retries_connection_error(self, method: str, safe: bool, sent: bool) -> bool:
        """``safe``: the request may be repeated (it carries an Idempotency-Key, or repeating
        it is harmless by design); ``sent``: the request may have reached the server."""
        return not sent or safe or method.upper() in IDEMPOTENT_METHODS

    def delay(
        self,
        retry: int,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before retry number ``retry``, or None to give up."""
        if retry > self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return self.backoff(retry, rand)

    def after_status(
        self, retry: int, status: int, retry_after: float | None = None
    ) -> float | None:
        """The wait before retrying an answer with this status, or None: do not retry."""
        return self.delay(retry, retry_after) if self.retries_status(status, retry_after) else None

    def after_connection_error(
        self, retry: int, method: str, safe: bool, sent: bool
    ) -> float | None:
        """The wait before retrying a request that failed to connect or to be answered."""
        if not self.retries_connection_error(method, safe, sent):
            return None
        return self.delay(retry)


@dataclass(frozen=True)
class RetryEvent:
    """What a client tells its ``on_retry`` hook before it sleeps and tries again:
    ``attempt`` is the number of the attempt that failed (1 for the first request)."""

    method: str
    path: str
    attempt: int
    delay: float
    status: int | None  # None: a connection error
    error: BaseException
