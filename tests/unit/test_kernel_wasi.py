"""Kernel.run on wasi_command modules: stdin/stdout/stderr, exit codes, the output cap while the
module runs (bounded memory), the scratch directory, and determinism of clocks and randomness."""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kernel import Kernel
from tests.unit.kernel_support import LIMITS, MODULES, example, hostile, run


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    yield k
    k.close()


def test_wasi_echo_copies_stdin_to_stdout(kernel: Kernel) -> None:
    data = json.dumps({"text": "x" * 300_000, "n": [1, 2, 3]}).encode()  # several 64 KiB reads
    result = run(
        kernel, example(kernel, "wasi_echo"), data, abi="wasi_command", entrypoint="_start"
    )
    assert result.ok, result
    assert result.output == data
    assert 0 < result.fuel_used < LIMITS.fuel


def test_the_manifest_default_entrypoint_falls_back_to_start(kernel: Kernel) -> None:
    result = run(kernel, example(kernel, "wasi_echo"), b"[true]", abi="wasi_command")
    assert result.ok and result.output == b"[true]"


def test_wasi_output_must_be_json(kernel: Kernel) -> None:
    module = example(kernel, "wasi_echo")
    result = run(kernel, module, b"hello", abi="wasi_command", entrypoint="_start")
    assert result.reason == "invalid_output"


def test_proc_exit_zero_is_success_and_non_zero_a_trap(kernel: Kernel) -> None:
    module = hostile(kernel, "wasi_exit")
    ok = run(kernel, module, b"0", abi="wasi_command", entrypoint="_start")
    assert ok.ok and ok.output == b"{}"
    bad = run(kernel, module, b"3", abi="wasi_command", entrypoint="_start")
    assert not bad.ok and bad.reason == "trap"
    assert "exited with code 3" in bad.message


def test_a_hidden_minimum_memory_above_the_limit_is_memory_limit(kernel: Kernel) -> None:
    module = hostile(kernel, "big_minimum_hidden")
    result = run(kernel, module, abi="wasi_command", entrypoint="_start")
    assert result.reason == "memory_limit"
    assert "1024 pages" in result.message


@pytest.mark.timeout(60)
def test_a_flood_of_output_is_capped_while_it_runs(kernel: Kernel) -> None:
    """64 KiB writes to stdout and stderr in a loop, until 30 000 units of fuel are spent
    (about 2 000 writes of each, ~125 MiB of stderr): stdout is refused past its cap, stderr
    dropped past its cap, and the process keeps no more than a few MiB."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    limits = replace(LIMITS, fuel=30_000, timeout_ms=60_000)
    result = run(kernel, hostile(kernel, "wasi_flood"), abi="wasi_command", limits=limits)
    growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert result.reason == "output_too_large", result
    assert result.output is None
    cap = limits.max_log_bytes
    assert result.logs[:cap] == bytes(cap)  # the module writes zeros
    dropped = int(re.findall(rb"(\d+) more bytes dropped", result.logs)[0])
    assert dropped > 50 * (1 << 20)  # it really flooded
    assert growth_kib < 64 * 1024  # and the process did not hold it


def test_the_output_cap_is_the_limit_s(kernel: Kernel) -> None:
    module = example(kernel, "wasi_echo")
    data = json.dumps({"text": "x" * 5000}).encode()
    limits = replace(LIMITS, max_output_bytes=1000)
    result = run(kernel, module, data, abi="wasi_command", entrypoint="_start", limits=limits)
    assert result.reason == "output_too_large"
    assert "1000" in result.message


def test_clocks_and_randomness_are_deterministic(kernel: Kernel) -> None:
    module = hostile(kernel, "wasi_entropy")
    first = run(kernel, module, abi="wasi_command", entrypoint="_start")
    second = run(kernel, module, abi="wasi_command", entrypoint="_start")
    assert first.ok and first.output == second.output
    hex_digits = json.loads(first.output or b"")
    clock_1, clock_2, random_bytes = (bytes.fromhex(hex_digits[i : i + 16]) for i in (0, 16, 32))
    assert int.from_bytes(clock_1, "little") == 0  # a logical clock: 0, then +1 ms per reading
    assert int.from_bytes(clock_2, "little") == 1_000_000
    assert len(random_bytes) == 8


def test_scratch_dir_is_preopened_only_when_granted(kernel: Kernel, tmp_path: Path) -> None:
    module = hostile(kernel, "wasi_scratch")
    denied = run(kernel, module, abi="wasi_command", entrypoint="_start", scratch_dir=tmp_path)
    assert json.loads(denied.output or b"") == {"scratch": False}
    assert not (tmp_path / "out.txt").exists()
    granted = run(
        kernel,
        module,
        abi="wasi_command",
        entrypoint="_start",
        capabilities=("scratch_dir",),
        scratch_dir=tmp_path,
    )
    assert json.loads(granted.output or b"") == {"scratch": True}
    assert (tmp_path / "out.txt").read_bytes() == b"hello"
    without_dir = run(kernel, module, abi="wasi_command", capabilities=("scratch_dir",))
    assert json.loads(without_dir.output or b"") == {"scratch": False}


SHUTDOWN_SCRIPT = """
from dataclasses import replace
from kernel import Kernel
from tests.unit.kernel_support import LIMITS, hostile, run
k = Kernel()
for _ in range(3):
    r = run(k, hostile(k, "wasi_flood"), abi="wasi_command", limits=replace(LIMITS, fuel=3000))
    assert r.reason == "output_too_large", r
print("done")
"""


@pytest.mark.timeout(60)
def test_the_process_exits_cleanly_after_trapped_wasi_runs() -> None:
    """A trapped run's Store used to outlive the run (a reference cycle through the trap) and be
    dropped at interpreter exit, where wasmtime's stream finalizers called into Python from a
    tokio thread: "panic in a function that cannot unwind". The kernel now drops it at once."""
    root = MODULES.parent.parent.parent
    done = subprocess.run(
        [sys.executable, "-c", SHUTDOWN_SCRIPT],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
    assert "panicked" not in done.stderr, done.stderr
