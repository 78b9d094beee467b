"""The SDK's retry policy, alone: Retry-After, backoff, and what is retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aion_sdk.errors import BadRequest, NotFound, RateLimited, Unprocessable, error_for
from aion_sdk.retries import RetryPolicy, parse_retry_after

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0", 0.0), (" 7 ", 7.0), ("1.5", 1.5), (None, None), ("", None),
     ("soon", None), ("-1", None), ("nan", None), ("inf", None)],
)  # fmt: skip
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    assert later.endswith("GMT")
    assert parse_retry_after(later, NOW) == 42.0
    assert parse_retry_after("Fri, 27 Nov 2026 12:00:30 GMT", NOW) == 30.0


def test_a_retry_after_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:00 GMT", NOW) == 0.0


def test_backoff_doubles_then_stops_at_its_cap() -> None:
    policy = RetryPolicy(max_retries=10, backoff_base=0.5, backoff_max=4.0, jitter=False)
    assert [policy.backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_jitter_stays_in_the_upper_half_of_the_backoff() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=100.0)
    assert policy.backoff(3, rand=lambda: 0.0) == 2.0
    assert policy.backoff(3, rand=lambda: 1.0) == 4.0
    assert policy.backoff(3, rand=lambda: 0.5) == 3.0


def test_only_429_503_and_a_409_in_flight_are_retried() -> None:
    policy = RetryPolicy(jitter=False)
    assert policy.after_status(1, 429) == 0.5
    assert policy.after_status(1, 503) == 0.5
    # A 409 with Retry-After: the first request with this Idempotency-Key is still in flight.
    assert policy.after_status(1, 409, retry_after=1.0) == 1.0
    for status in (400, 401, 403, 404, 409, 413, 415, 422, 500, 502):
        assert policy.after_status(1, status) is None, status


def test_retry_after_wins_over_backoff_up_to_its_bound() -> None:
    policy = RetryPolicy(max_retry_after=60)
    assert policy.after_status(1, 429, retry_after=5.0) == 5.0
    assert policy.after_status(1, 503, retry_after=60.0) == 60.0
    assert policy.after_status(1, 429, retry_after=61.0) is None  # raised, not slept through


def test_retries_stop_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=2, jitter=False)
    assert policy.after_status(2, 429, retry_after=1.0) == 1.0
    assert policy.after_status(3, 429, retry_after=1.0) is None
    assert RetryPolicy(max_retries=0).after_status(1, 503) is None


def test_connection_errors_are_retried_only_when_repeating_is_safe() -> None:
    policy = RetryPolicy(jitter=False)
    for method in ("GET", "PUT", "DELETE", "HEAD", "OPTIONS", "get"):
        assert policy.after_connection_error(1, method, safe=False, sent=True) == 0.5
    assert policy.after_connection_error(1, "POST", safe=False, sent=True) is None
    assert policy.after_connection_error(1, "POST", safe=True, sent=True) == 0.5  # a key
    assert policy.after_connection_error(1, "POST", safe=False, sent=False) == 0.5  # not sent
    assert policy.after_connection_error(4, "GET", safe=True, sent=True) is None


def test_errors_are_typed_and_carry_the_problem_fields() -> None:
    body = (
        b'{"type": "https://aion.dev/problems/invalid-field", "title": "Invalid request body",'
        b' "status": 422, "detail": "/labels/team: expected string", "field": "/labels/team",'
        b' "errors": [{"field": "/labels/team", "message": "expected string"}],'
        b' "instance": "/v1/tenants", "command_id": "c-1"}'
    )
    error = error_for(422, body, {"Content-Type": "application/problem+json"})
    assert isinstance(error, Unprocessable)
    assert (error.status, error.code, error.field) == (422, "invalid-field", "/labels/team")
    assert error.title == "Invalid request body" and error.instance == "/v1/tenants"
    assert error.errors == [{"field": "/labels/team", "message": "expected string"}]
    assert error.command_id == "c-1" and error.problem["command_id"] == "c-1"
    assert "422 invalid-field" in str(error)


def test_a_429_carries_its_retry_after_and_a_401_its_reason() -> None:
    limited = error_for(429, b'{"type": "https://aion.dev/problems/rate-limited"}',
                        {"Retry-After": "2"}, attempts=4)  # fmt: skip
    assert isinstance(limited, RateLimited)
    assert (limited.retry_after, limited.attempts) == (2.0, 4)
    unauthenticated = error_for(401, b'{"status": 401, "reason": "expired"}', {})
    assert unauthenticated.reason == "expired"


def test_an_answer_that_is_not_a_problem_still_gives_a_typed_error() -> None:
    error = error_for(404, b"<html>nope</html>", {})
    assert isinstance(error, NotFound) and error.detail == "<html>nope</html>"
    assert isinstance(error_for(400, b"", {}), BadRequest)
    assert type(error_for(418, b"[]", {})).__name__ == "ApiError"
