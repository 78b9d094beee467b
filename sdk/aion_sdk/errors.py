"""Typed errors: every non-2xx answer of the API is an RFC 9457 problem, raised as one class
per status so that callers can ``except NotFound`` instead of comparing numbers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aion_sdk.retries import parse_retry_after

PROBLEM_BASE = "https://aion.dev/problems/"


class AionError(Exception):
    """Base of everything this package raises on purpose."""


class ApiError(AionError):
    """An error answer of the API, with the problem+json fields it carried.

    ``code`` is the last part of ``type`` (``not-found``, ``invalid-field``, ...); ``field``
    names the offending body field as a JSON pointer, or a path/query parameter or header by
    its name; ``problem`` is the whole body (extra members such as ``command_id``,
    ``current_version`` or ``policies`` are there); ``attempts`` is how many requests were
    sent before giving up (more than one when retries ran).
    """

    status: int

    def __init__(
        self,
        status: int,
        problem: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.problem: dict[str, Any] = dict(problem)
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        self.attempts = attempts
        self.type: str = str(problem.get("type") or "about:blank")
        self.title: str = str(problem.get("title") or "")
        self.detail: str = str(problem.get("detail") or self.title)
        field = problem.get("field")
        self.field: str | None = None if field is None else str(field)
        reason = problem.get("reason")
        self.reason: str | None = None if reason is None else str(reason)
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        self.instance: str | None = problem.get("instance")
        self.retry_after: float | None = parse_retry_after(self.headers.get("retry-after"))
        super().__init__(f"{status} {self.code}: {self.detail}")

    @property
    def code(self) -> str:
        """The problem type without its base URL, e.g. ``rate-limited``."""
        return self.type.removeprefix(PROBLEM_BASE)

    @property
    def command_id(self) -> str | None:
        """The rejected command's id, when a waited command was refused by its decider."""
        value = self.problem.get("command_id")
        return None if value is None else str(value)


class BadRequest(ApiError):
    """400: malformed JSON, parameter or header."""


class Unauthorized(ApiError):
    """401: no credential, or one that does not verify; ``reason`` says why."""


class Forbidden(ApiError):
    """403: roles or the tenant's Cedar policies forbid it, or the tenant is suspended."""


class NotFound(ApiError):
    """404: unknown resource, command or tenant."""


class Conflict(ApiError):
    """409: already exists, version conflict, or an Idempotency-Key reused with another body."""


class PayloadTooLarge(ApiError):
    """413: the body is over the API's limit."""


class UnsupportedMediaType(ApiError):
    """415: a content type the route does not take."""


class Unprocessable(ApiError):
    """422: a field is invalid; ``field`` names it."""


class RateLimited(ApiError):
    """429: a token bucket is empty; ``retry_after`` says when to come back."""


class Unavailable(ApiError):
    """503: a service the API needs is unavailable (or the API is not ready)."""


BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: Unprocessable,
    429: RateLimited,
    503: Unavailable,
}


def error_for(
    status: int, content: bytes, headers: Mapping[str, str], attempts: int = 1
) -> ApiError:
    """The typed error of an answer; a body that is not a problem still gives its text."""
    try:
        body = json.loads(content) if content else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    if not body:
        text = content.decode("utf-8", "replace").strip()[:500]
        body = {"status": status, "title": f"HTTP {status}", "detail": text or f"HTTP {status}"}
    return BY_STATUS.get(status, ApiError)(status, body, headers, attempts)
