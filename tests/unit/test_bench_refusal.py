"""`aion bench` refuses to start its own roles beside other Aion roles (decision 47): they
would join the same consumer groups and share the work (a raw 404 on .../tasks/batch once)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from aion.bench import system
from aion.cli import app


@pytest.fixture
def fake_worker() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line is that of `python -m aion worker` (it only sleeps)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-m", "aion", "worker"]
    )
    yield proc
    proc.kill()
    proc.wait()


def test_a_role_running_on_this_machine_is_found(fake_worker: subprocess.Popen[bytes]) -> None:
    assert fake_worker.pid in system.running_roles().get("worker", [])
    with pytest.raises(system.BenchRefused, match="Stop `make up`"):
        system.refuse_beside_local()


def test_the_cli_refuses_before_starting_the_stack(
    fake_worker: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_stack(self: object) -> None:
        raise AssertionError("the bench started the stack beside a running worker")

    monkeypatch.setattr(system.Stack, "up", no_stack)
    result = CliRunner().invoke(app, ["bench", "--only", "5"], env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    assert "other Aion roles are running on this machine" in result.output
    assert "worker (pid" in result.output and str(fake_worker.pid) in result.output
    assert "aion bench --api URL" in result.output


def test_members_of_the_consumer_groups_refuse_after_their_session_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = iter([{"aion-streams": 1}, {"aion-streams": 1}, {"aion-streams": 1}])
    monkeypatch.setattr(system, "group_members", lambda settings: next(seen))
    monkeypatch.setattr(system, "MEMBERS_LEAVE_S", 0.0)
    with pytest.raises(system.BenchRefused, match=r"aion-streams \(1\)"):
        system.refuse_beside_members(object(), poll_s=0)  # type: ignore[arg-type]


def test_members_that_leave_in_time_let_the_bench_start(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = iter([{"aion-kernel": 1}, {}])
    monkeypatch.setattr(system, "group_members", lambda settings: next(seen))
    system.refuse_beside_members(object(), poll_s=0)  # type: ignore[arg-type]
