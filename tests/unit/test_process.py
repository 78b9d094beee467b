"""Child processes of the stack (pid files, stopping, port probes) and prerequisite lookups."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aion.stack import prerequisites
from aion.stack.prerequisites import MissingPrerequisite
from aion.stack.process import (
    ManagedProcess,
    StackError,
    pid_alive,
    port_open,
    run_checked,
    tail,
)


@pytest.fixture()
def managed(tmp_path: Path) -> Iterator[ManagedProcess]:
    proc = ManagedProcess("sleeper", tmp_path / "run", tmp_path / "log")
    yield proc
    # Never leave a child behind, even when an assertion failed half-way.
    pid = proc.pid()
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_spawn_records_the_pid_and_stop_ends_it(managed: ManagedProcess) -> None:
    pid = managed.spawn(["sleep", "60"])
    assert managed.pid_file == managed.run_dir / "sleeper.pid"
    assert managed.pid_file.read_text() == str(pid)
    assert managed.pid() == pid
    assert pid_alive(pid) is True
    assert os.getpgid(pid) == pid  # its own session, so killpg reaches only it
    assert "starting: sleep 60" in managed.log_file.read_text()

    assert managed.stop(timeout=5) is True
    assert pid_alive(pid) is False
    assert managed.pid_file.exists() is False
    assert managed.pid() is None
    assert managed.stop(timeout=5) is False  # nothing left to stop


def test_spawn_passes_env_and_cwd(managed: ManagedProcess, tmp_path: Path) -> None:
    pid = managed.spawn(
        ["sh", "-c", 'echo "$AION_PROBE in $(pwd)"'], env={"AION_PROBE": "hi"}, cwd=tmp_path
    )
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    assert f"hi in {tmp_path}" in managed.log_file.read_text()


def test_stale_pid_file_is_removed(managed: ManagedProcess) -> None:
    managed.run_dir.mkdir(parents=True)
    managed.pid_file.write_text(f"{dead_pid()}\n")
    assert managed.pid() is None
    assert managed.pid_file.exists() is False


@pytest.mark.parametrize("content", ["not-a-pid", "", "12ab"])
def test_garbage_pid_file_means_no_process(managed: ManagedProcess, content: str) -> None:
    managed.run_dir.mkdir(parents=True)
    managed.pid_file.write_text(content)
    assert managed.pid() is None


def test_missing_pid_file_means_no_process(managed: ManagedProcess) -> None:
    assert managed.pid() is None
    assert managed.stop(timeout=1) is False


def test_pid_file_with_zero_means_no_process(managed: ManagedProcess) -> None:
    managed.run_dir.mkdir(parents=True)
    managed.pid_file.write_text("0")
    assert managed.pid() is None  # only pid(): never call stop() here


def test_pid_alive_of_a_dead_pid_is_false() -> None:
    assert pid_alive(dead_pid()) is False
    assert pid_alive(os.getpid()) is True


def test_port_open_follows_a_listening_socket() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        assert port_open("127.0.0.1", port) is True
    finally:
        server.close()
    assert port_open("127.0.0.1", port) is False


def test_run_checked_failure_raises_with_the_tail_of_the_output(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "step.log"
    script = "for i in $(seq 1 40); do echo line-$i; done; echo the-last-words >&2; exit 3"
    with pytest.raises(StackError) as caught:
        run_checked(["sh", "-c", script], what="demo step", log=log)
    message = str(caught.value)
    assert message.startswith("demo step failed (exit 3).")
    assert str(log) in message
    assert "the-last-words" in message  # stderr goes to the log too
    assert "line-40" in message
    assert "line-5\n" not in message  # only the tail, not the whole log


def test_run_checked_success_logs_and_returns(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    run_checked(["sh", "-c", "echo fine"], what="ok step", log=log)
    assert log.read_text().rstrip().endswith("fine")


def test_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert tail(log) == f"(no log at {log})"
    log.write_text("".join(f"{i}\n" for i in range(10)))
    assert tail(log, lines=3) == "7\n8\n9"


def test_stack_error_is_a_runtime_error() -> None:
    assert issubclass(MissingPrerequisite, StackError)
    assert issubclass(StackError, RuntimeError)


def test_which_finds_a_program_and_refuses_a_missing_one() -> None:
    assert prerequisites.which("sh").name == "sh"
    with pytest.raises(MissingPrerequisite) as caught:
        prerequisites.which("definitely-not-a-program")
    assert caught.value.program == "definitely-not-a-program"
    assert str(caught.value).startswith("definitely-not-a-program is needed but was not found")


def test_missing_prerequisite_names_the_install_command() -> None:
    error = MissingPrerequisite("redis-server")
    assert "apt-get install -y redis-server" in str(error)
    assert str(MissingPrerequisite("x", "do this")).endswith("Install it with: do this")


def test_java_of_an_impossible_version_is_missing() -> None:
    with pytest.raises(MissingPrerequisite) as caught:
        prerequisites.java(999)
    assert caught.value.program == "java 999 or newer"
    assert "AION_REGISTRY_JAVA" in str(caught.value)
