"""Issue 17, finding 14 (kernel): a run's /scratch has a disk quota, and aion.infer copies no
more of guest memory than the declared limits allow."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kernel import Kernel, RunResult
from kernel.scratch import Usage, quota_problem, usage
from tests.unit.kernel_support import LIMITS, RecordingHost, hostile, run

QUOTA = replace(LIMITS, max_scratch_bytes=1 << 20)  # 1 MiB


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    yield k
    k.close()


def scratch_run(kernel: Kernel, name: str, scratch: Path, limits: object = QUOTA) -> RunResult:
    return run(
        kernel,
        hostile(kernel, name),
        abi="wasi_command",
        entrypoint="_start",
        capabilities=("scratch_dir",),
        scratch_dir=scratch,
        limits=limits,  # type: ignore[arg-type]
    )


def test_a_run_that_writes_past_its_scratch_quota_fails_and_leaves_no_files(
    kernel: Kernel, tmp_path: Path
) -> None:
    """16 MiB written against a 1 MiB quota: the run fails (output_too_large, saying scratch
    quota) and /scratch is emptied, so no worker ever stores the files."""
    result = scratch_run(kernel, "wasi_scratch_fill", tmp_path)
    assert not result.ok, result
    assert result.reason == "output_too_large"
    assert "scratch quota" in result.message and str(1 << 20) in result.message
    assert list(tmp_path.iterdir()) == []


def test_a_module_writing_for_ever_is_stopped_while_it_runs(kernel: Kernel, tmp_path: Path) -> None:
    """An endless writer is stopped by the quota check at an epoch tick, long before its
    timeout: the disk holds at most what it wrote within a tick or so."""
    limits = replace(QUOTA, fuel=10**12, timeout_ms=60_000)
    result = scratch_run(kernel, "wasi_scratch_flood", tmp_path, limits)
    assert result.reason == "output_too_large", result
    assert "the run was stopped" in result.message
    assert result.duration_ms < 30_000  # well before the timeout (generous: 2 cores, CI)
    assert list(tmp_path.iterdir()) == []


def test_too_many_files_are_over_the_quota(kernel: Kernel, tmp_path: Path) -> None:
    limits = replace(LIMITS, max_scratch_entries=10)
    result = scratch_run(kernel, "wasi_scratch_files", tmp_path, limits)
    assert result.reason == "output_too_large", result
    assert "10 files and directories" in result.message
    assert list(tmp_path.iterdir()) == []


def test_a_run_within_its_quota_keeps_its_files(kernel: Kernel, tmp_path: Path) -> None:
    result = scratch_run(kernel, "wasi_scratch_fill", tmp_path, replace(LIMITS))
    assert result.ok, result
    assert json.loads(result.output or b"") == {"written": True}
    assert (tmp_path / "fill.bin").stat().st_size == 16 << 20


def test_the_guard_still_ends_a_run_at_its_timeout(kernel: Kernel, tmp_path: Path) -> None:
    """With the quota guard in place of the plain epoch deadline, a timeout is still one."""
    limits = replace(LIMITS, fuel=10**12, timeout_ms=300, max_scratch_bytes=1 << 40)
    result = scratch_run(kernel, "wasi_scratch_flood", tmp_path, limits)
    assert result.reason == "timeout", result
    assert "300 ms" in result.message


def test_a_sparse_file_counts_at_its_apparent_size(tmp_path: Path) -> None:
    with (tmp_path / "sparse").open("wb") as sparse:
        sparse.truncate(1 << 40)  # a terabyte that holds no block
    found = usage(tmp_path, 1 << 20, 100)
    assert found.bytes > 1 << 20
    assert quota_problem(found, QUOTA) is not None
    assert quota_problem(Usage(0, 0), QUOTA) is None


def test_infer_refuses_a_huge_prompt_without_copying_it(kernel: Kernel) -> None:
    """The module passes a 48 MiB prompt (inside its 64 MiB memory): aion.infer refuses it by
    its length, before any copy, and the model is never asked."""
    host = RecordingHost(answers={"mini": '"x"'})
    limits = replace(LIMITS, memory_mb=64)
    module = hostile(kernel, "infer_huge_prompt")
    tracemalloc.start()
    try:
        result = run(
            kernel,
            module,
            limits=limits,
            capabilities=("model_inference",),
            host=host,
            models=("mini",),
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert host.prompts == []
    assert not result.ok and result.reason == "trap", result  # the module returned -1
    assert b"aion.infer refused: the prompt is 50331648 bytes, above the limit of" in result.logs
    assert peak < 8 << 20, peak  # no copy of the 48 MiB range


def test_infer_still_answers_a_prompt_within_the_limit(kernel: Kernel) -> None:
    host = RecordingHost(answers={"mini": '"x"'})
    limits = replace(LIMITS, memory_mb=64, max_prompt_bytes=64 << 20)
    result = run(
        kernel,
        hostile(kernel, "infer_huge_prompt"),
        limits=limits,
        capabilities=("model_inference",),
        host=host,
        models=("mini",),
    )
    assert result.ok and result.output == b'"x"', result
    assert len(host.prompts[0][1]) == 0x3000000
