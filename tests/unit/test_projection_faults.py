"""What a projection runner waits out and what makes an event a dead letter (issue 17,
finding 13), and how the runners' health adds up across processes."""

from __future__ import annotations

import psycopg
import redis
from psycopg import errors

from projections.dead_letters import DeadLetterNotSent
from projections.faults import is_transient
from projections.health import RunnerHealth, summarize
from schemas.codec import DecodeError, RegistryUnavailable


def test_lost_servers_are_transient() -> None:
    assert is_transient(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert is_transient(errors.AdminShutdown())  # pg_terminate_backend
    assert is_transient(errors.DeadlockDetected())
    assert is_transient(errors.UndefinedTable())  # the database's state, not the event's
    assert is_transient(psycopg.InterfaceError("the connection is closed"))
    assert is_transient(redis.ConnectionError("refused"))
    assert is_transient(RegistryUnavailable("registry"))
    assert is_transient(DeadLetterNotSent("no ack"))


def test_errors_of_the_event_are_not() -> None:
    assert not is_transient(errors.UniqueViolation())
    assert not is_transient(errors.NumericValueOutOfRange())
    assert not is_transient(KeyError("payload"))
    assert not is_transient(ValueError("bad"))
    assert not is_transient(DecodeError("not avro"))


def test_a_projection_retrying_in_any_process_is_retrying() -> None:
    a, b = RunnerHealth("core"), RunnerHealth("core")
    a.running()
    b.retrying(psycopg.OperationalError("gone"))
    b.retrying(psycopg.OperationalError("still gone"))
    live = RunnerHealth("live")
    live.running()
    found = summarize([a.report("p1"), b.report("p2"), live.report("p1")])
    assert found["core"]["state"] == "retrying" and found["core"]["processes"] == 2
    assert found["core"]["error"] == "OperationalError: still gone"
    assert found["core"]["failures"] == 2
    assert found["live"] == {"state": "running", "processes": 1, "dead_letters": 0}
    b.running()
    assert summarize([a.report("p1"), b.report("p2")])["core"]["state"] == "running"
