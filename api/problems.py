"""RFC 9457 problem details: every error the API returns, with the offending field named."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

PROBLEM_BASE = "https://aion.dev/problems/"


class Problem(Exception):
    """Raised anywhere in a request; rendered as application/problem+json."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str = "",
        *,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.field, self.errors, self.headers, self.extra = field, errors, headers or {}, extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail or self.title,
        }
        if instance:
            body["instance"] = instance
        if self.field is not None:
            body["field"] = self.field
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        media_type="application/problem+json",
        headers=problem.headers,
    )
