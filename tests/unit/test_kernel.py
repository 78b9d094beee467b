"""Kernel.run on reactor modules: the shipped examples, every quota, the hostile modules, the
host calls (log, progress, infer), determinism and parallel runs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from kernel import Kernel, Limits, RunResult, mini_model
from tests.unit.kernel_support import LIMITS, RecordingHost, example, hostile, run


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    yield k
    k.close()


def failed(result: RunResult, reason: str) -> RunResult:
    assert not result.ok, result
    assert result.reason == reason, result
    assert result.output is None
    return result


# --- the shipped examples ------------------------------------------------------------------------


def test_echo_returns_its_input(kernel: Kernel) -> None:
    data = json.dumps({"a": [1, 2.5, None, "é"], "b": {"c": True}}).encode()
    result = run(kernel, example(kernel, "echo"), data)
    assert result.ok and result.reason is None
    assert result.output == data
    assert 0 < result.fuel_used < LIMITS.fuel
    assert result.logs == b""


def stats(text: str) -> dict[str, int]:
    """The documented text_stats behaviour, in Python."""
    lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    words = len(re.findall(r"[^ \t\n\v\f\r]+", text))
    return {"bytes": len(text.encode("utf-8")), "words": words, "lines": lines}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "hello world",
        "  two   spaces  ",
        "one\ntwo\nthree",
        "ends with newline\n",
        "\n\n",
        'quotes " and \\ backslashes / too',
        "tab\tseparated\tvalues\r\nwindows line",
        "été à Noël — ünïcödé",
        "emoji 😀 and 𝄞 beyond the BMP",
        "control \u0001 and \u000b vertical tab",
    ],
)
def test_text_stats_counts_bytes_words_lines(kernel: Kernel, text: str) -> None:
    module = example(kernel, "text_stats")
    for ensure_ascii in (True, False):  # escapes (\u00e9, surrogate pairs) and raw UTF-8
        data = json.dumps({"text": text}, ensure_ascii=ensure_ascii).encode()
        result = run(kernel, module, data)
        assert result.ok, result
        assert json.loads(result.output or b"") == stats(text)


def test_text_stats_finds_text_among_other_keys(kernel: Kernel) -> None:
    data = b'{"lang": "en", "text" :  "a b c", "n": 3}'
    result = run(kernel, example(kernel, "text_stats"), data)
    assert json.loads(result.output or b"") == {"bytes": 5, "words": 3, "lines": 1}


def test_text_stats_without_text_says_so(kernel: Kernel) -> None:
    result = run(kernel, example(kernel, "text_stats"), b'{"body": "hi"}')
    assert result.ok
    assert json.loads(result.output or b"") == {"error": 'expected {"text": string}'}
    assert b'no "text" string' in result.logs


def test_json_wrap_wraps_its_input(kernel: Kernel) -> None:
    data = b'{"x": [1, {"y": null}]}'
    result = run(kernel, example(kernel, "json_wrap"), data)
    assert result.ok
    assert json.loads(result.output or b"") == {"input": json.loads(data), "agent": "json-wrap"}


def test_json_wrap_of_invalid_json_is_invalid_output(kernel: Kernel) -> None:
    failed(run(kernel, example(kernel, "json_wrap"), b"{not json"), "invalid_output")


# --- aion.infer ----------------------------------------------------------------------------------


def test_ask_model_granted_returns_the_model_answer(kernel: Kernel) -> None:
    prompt = json.dumps({"text": "the cat sat on the mat; the cat slept"})
    host = mini_model.MiniHost()
    result = run(
        kernel,
        example(kernel, "ask_model"),
        prompt.encode(),
        capabilities=("model_inference",),
        models=("mini",),
        host=host,
    )
    assert result.ok, result
    assert json.loads(result.output or b"") == {"answer": json.loads(mini_model.infer(prompt))}
    assert json.loads(result.output or b"") == {"answer": "the cat text"}
    assert host.prompts == [("mini", prompt)]


def test_ask_model_without_the_capability_is_refused(kernel: Kernel) -> None:
    host = RecordingHost(answers={"mini": '"x"'})
    result = failed(
        run(kernel, example(kernel, "ask_model"), models=("mini",), host=host), "refused"
    )
    assert "aion.infer" in result.message and "model_inference" in result.message
    assert host.prompts == []


def test_ask_model_with_a_model_not_in_the_manifest_gets_null(kernel: Kernel) -> None:
    host = RecordingHost(answers={"mini": '"x"'})
    module = example(kernel, "ask_model")
    result = run(kernel, module, capabilities=("model_inference",), models=("other",), host=host)
    assert result.ok
    assert json.loads(result.output or b"") == {"answer": None}
    assert b"'mini' is not one of this agent's models" in result.logs
    assert b"ask_model: aion.infer failed" in result.logs
    assert host.prompts == []  # the host was never asked


def test_ask_model_with_a_model_unknown_to_the_host_gets_null(kernel: Kernel) -> None:
    host = RecordingHost(answers={})  # KeyError for "mini"
    module = example(kernel, "ask_model")
    result = run(kernel, module, capabilities=("model_inference",), models=("mini",), host=host)
    assert result.ok
    assert json.loads(result.output or b"") == {"answer": None}
    assert b"'mini' is unknown to the host" in result.logs


def test_a_failing_host_model_is_logged_not_raised(kernel: Kernel) -> None:
    host = RecordingHost(fail_with=RuntimeError("GPU on fire"))
    module = example(kernel, "ask_model")
    result = run(kernel, module, capabilities=("model_inference",), models=("mini",), host=host)
    assert result.ok
    assert json.loads(result.output or b"") == {"answer": None}
    assert b"GPU on fire" in result.logs


def test_a_trap_in_alloc_during_infer_fails_the_run(kernel: Kernel) -> None:
    host = RecordingHost(answers={"mini": '"answer"'})
    module = hostile(kernel, "infer_bad_alloc")
    result = run(kernel, module, capabilities=("model_inference",), models=("mini",), host=host)
    failed(result, "trap")
    assert "unreachable" in result.message


# --- aion.progress and aion.log ------------------------------------------------------------------


def test_progress_reaches_the_host_and_malformed_progress_is_logged(kernel: Kernel) -> None:
    host = RecordingHost()
    result = run(kernel, hostile(kernel, "progress"), capabilities=("progress",), host=host)
    assert result.ok
    assert host.progress_events == [(50.0, "half"), (None, "busy")]
    assert b"aion.progress ignored" in result.logs and b"50% done" in result.logs


def test_progress_without_the_capability_is_refused(kernel: Kernel) -> None:
    result = failed(run(kernel, hostile(kernel, "progress")), "refused")
    assert "import aion.progress" in result.message


def test_logs_are_capped_with_a_marker(kernel: Kernel) -> None:
    limits = replace(LIMITS, max_log_bytes=4096)
    result = run(kernel, hostile(kernel, "chatty"), limits=limits)
    assert result.ok and result.output == b"{}"
    kept, marker = result.logs[:4096], result.logs[4096:]
    assert kept.startswith(b"chatty: xxx")
    assert re.fullmatch(rb"\n\[aion: \d+ more bytes dropped, cap 4096\]\n", marker)
    dropped = int(re.findall(rb"\d+", marker)[0])
    assert dropped == 10_000 * 101 - 4096  # every byte accounted for, none kept beyond the cap


def test_an_agent_returning_minus_one_fails_with_its_logs(kernel: Kernel) -> None:
    result = failed(run(kernel, hostile(kernel, "error_return")), "trap")
    assert "returned -1" in result.message
    assert result.logs == b"bad input\n"


# --- quotas --------------------------------------------------------------------------------------


def test_fuel_used_is_positive_and_below_the_limit_on_success(kernel: Kernel) -> None:
    result = run(kernel, example(kernel, "text_stats"), b'{"text": "a b c"}')
    assert result.ok
    assert 0 < result.fuel_used < LIMITS.fuel
    assert result.duration_ms >= 0


def test_infinite_loop_runs_out_of_fuel(kernel: Kernel) -> None:
    limits = replace(LIMITS, fuel=100_000)
    result = failed(run(kernel, hostile(kernel, "loop"), limits=limits), "out_of_fuel")
    assert result.fuel_used == 100_000
    assert "100000" in result.message


@pytest.mark.timeout(30)
def test_infinite_loop_with_huge_fuel_times_out(kernel: Kernel) -> None:
    limits = replace(LIMITS, fuel=10**18, timeout_ms=100)
    result = failed(run(kernel, hostile(kernel, "loop"), limits=limits), "timeout")
    assert "100 ms" in result.message
    assert result.fuel_used > 0


def test_memory_bomb_hits_the_memory_limit(kernel: Kernel) -> None:
    result = failed(run(kernel, hostile(kernel, "memory_bomb")), "memory_limit")
    assert "16 MiB" in result.message and "memory.grow was refused" in result.message


def test_memory_limit_follows_the_quota(kernel: Kernel) -> None:
    module = hostile(kernel, "memory_bomb")
    limits = replace(LIMITS, memory_mb=2)
    result = failed(run(kernel, module, limits=limits), "memory_limit")
    assert "2 MiB" in result.message


def test_a_declared_minimum_above_the_limit_is_memory_limit(kernel: Kernel) -> None:
    result = failed(run(kernel, hostile(kernel, "big_minimum")), "memory_limit")
    assert "64 MiB" in result.message and "16 MiB" in result.message
    assert result.fuel_used == 0  # refused before running anything
    limits = replace(LIMITS, memory_mb=64)
    assert run(kernel, hostile(kernel, "big_minimum"), limits=limits).reason == "invalid_output"


def test_a_table_above_table_elements_is_memory_limit(kernel: Kernel) -> None:
    result = failed(run(kernel, hostile(kernel, "big_table")), "memory_limit")
    assert "table" in result.message
    limits = replace(LIMITS, table_elements=20_000)
    assert run(kernel, hostile(kernel, "big_table"), limits=limits).reason == "invalid_output"


def test_deep_recursion_traps_cleanly_and_the_process_survives(kernel: Kernel) -> None:
    result = failed(run(kernel, hostile(kernel, "recursion")), "trap")
    assert "stack overflow" in result.message
    assert len(result.message) < 200  # not thousands of backtrace frames
    again = run(kernel, example(kernel, "echo"), b"[1]")
    assert again.ok and again.output == b"[1]"


def test_huge_output_is_output_too_large(kernel: Kernel) -> None:
    result = failed(run(kernel, hostile(kernel, "huge_output")), "output_too_large")
    assert "2097152" in result.message
    limits = replace(LIMITS, max_output_bytes=4 << 20)
    assert run(kernel, hostile(kernel, "huge_output"), limits=limits).reason == "invalid_output"


def test_output_cap_applies_to_a_valid_output(kernel: Kernel) -> None:
    data = json.dumps({"text": "x" * 200}).encode()
    limits = replace(LIMITS, max_output_bytes=100)
    failed(run(kernel, example(kernel, "echo"), data, limits=limits), "output_too_large")


@pytest.mark.parametrize(
    ("name", "words"),
    [("unreachable", "unreachable"), ("divide_by_zero", "integer divide by zero")],
)
def test_plain_traps_carry_wasmtime_message(kernel: Kernel, name: str, words: str) -> None:
    result = failed(run(kernel, hostile(kernel, name)), "trap")
    assert words in result.message
    assert "\n" not in result.message and len(result.message) < 200


# --- refusals and invalid outputs ----------------------------------------------------------------


def test_an_import_not_granted_is_refused_naming_it(kernel: Kernel) -> None:
    result = failed(run(kernel, hostile(kernel, "not_granted")), "refused")
    assert "env.now" in result.message
    assert result.fuel_used == 0


def test_a_reactor_importing_wasi_is_refused(kernel: Kernel) -> None:
    result = failed(run(kernel, hostile(kernel, "reactor_wasi")), "refused")
    assert "wasi_snapshot_preview1.fd_write" in result.message


def test_a_module_without_alloc_is_refused(kernel: Kernel) -> None:
    result = failed(run(kernel, hostile(kernel, "no_alloc")), "refused")
    assert "alloc" in result.message


def test_a_missing_entrypoint_is_refused(kernel: Kernel) -> None:
    result = failed(run(kernel, example(kernel, "echo"), entrypoint="main"), "refused")
    assert "'main'" in result.message


def test_an_entrypoint_of_the_wrong_type_is_refused(kernel: Kernel) -> None:
    result = failed(run(kernel, hostile(kernel, "bad_signature")), "refused")
    assert "(i32, i32) -> (i64)" in result.message


def test_an_unknown_abi_is_refused(kernel: Kernel) -> None:
    result = failed(run(kernel, example(kernel, "echo"), abi="component"), "refused")
    assert "component" in result.message


@pytest.mark.parametrize("name", ["invalid_output", "nan_output", "output_outside"])
def test_outputs_that_are_not_json_are_invalid_output(kernel: Kernel, name: str) -> None:
    failed(run(kernel, hostile(kernel, name)), "invalid_output")


def test_a_closed_kernel_refuses_runs() -> None:
    k = Kernel()
    module = example(k, "echo")
    assert run(k, module).ok
    k.close()
    result = failed(run(k, module), "refused")
    assert "closed" in result.message


# --- determinism and threads ---------------------------------------------------------------------


def test_same_module_input_and_limits_give_the_same_result(kernel: Kernel) -> None:
    module = example(kernel, "text_stats")
    data = b'{"text": "to be or not to be"}'
    first, second = run(kernel, module, data), run(kernel, module, data)
    assert first.ok and first.output == second.output
    assert first.fuel_used == second.fuel_used


def test_parallel_runs_in_threads_give_correct_results(kernel: Kernel) -> None:
    echo = example(kernel, "echo")
    text_stats = example(kernel, "text_stats")
    loop = hostile(kernel, "loop")
    small_fuel = replace(LIMITS, fuel=200_000)

    def job(i: int) -> tuple[int, RunResult]:
        if i % 3 == 0:
            return i, run(kernel, echo, json.dumps({"i": i}).encode())
        if i % 3 == 1:
            return i, run(kernel, text_stats, json.dumps({"text": "w " * i}).encode())
        return i, run(kernel, loop, limits=small_fuel)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(job, range(96)))
    for i, result in results:
        if i % 3 == 0:
            assert result.output == json.dumps({"i": i}).encode()
        elif i % 3 == 1:
            assert json.loads(result.output or b"") == stats("w " * i)
        else:
            assert result.reason == "out_of_fuel" and result.fuel_used == 200_000


def test_limits_defaults() -> None:
    limits = Limits(fuel=1, memory_mb=1, timeout_ms=1)
    assert (limits.max_output_bytes, limits.max_log_bytes) == (1 << 20, 64 << 10)
    assert limits.table_elements == 10_000


def test_invalid_limits_are_refused(kernel: Kernel) -> None:
    result = failed(run(kernel, example(kernel, "echo"), limits=replace(LIMITS, fuel=0)), "refused")
    assert "invalid limits" in result.message
