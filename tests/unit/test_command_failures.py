"""How the command processor treats a command whose handling raised (issue 17, finding 7)."""

from __future__ import annotations

import urllib3.exceptions

from streams.command_failures import (
    INTERNAL_ERROR,
    MAX_ATTEMPTS,
    MAX_DELAY_SECONDS,
    CommandFailed,
    Failures,
)


def failed(command_id: str, error: Exception) -> CommandFailed:
    try:
        raise CommandFailed(3, command_id, "aion.agent.DeployAgent") from error
    except CommandFailed as exc:
        return exc


def test_an_unanswering_server_is_waited_out_for_ever_with_a_capped_backoff() -> None:
    failures = Failures()
    delays = []
    for error in [ConnectionRefusedError("no"), urllib3.exceptions.MaxRetryError(None, "/")] * 10:
        retry = failures.record(failed("c1", error))
        assert retry.rejected is None
        delays.append(retry.delay)
    assert delays[:3] == [0.5, 1.0, 2.0]
    assert max(delays) == MAX_DELAY_SECONDS


def test_another_error_is_tried_a_few_times_then_the_command_is_rejected_with_it() -> None:
    failures = Failures()
    for _ in range(MAX_ATTEMPTS - 1):
        assert failures.record(failed("c1", ValueError("bad"))).rejected is None
    rejected = failures.record(failed("c1", ValueError("bad"))).rejected
    assert rejected is not None
    assert (rejected.code, rejected.reason) == (INTERNAL_ERROR, "ValueError: bad")
    assert "c1" not in failures.counts  # forgotten once decided


def test_the_failures_remembered_are_bounded() -> None:
    failures = Failures(size=4)
    for n in range(100):
        failures.record(failed(f"c{n}", ValueError("bad")))
    assert list(failures.counts) == ["c96", "c97", "c98", "c99"]
