"""The pure parts of the kernel: import rules, value packing, JSON and progress checks, trap
messages, the stand-in model, the shipped examples and the agent ABI page's WAT."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from kernel import Kernel, import_problem, mini_model
from kernel.abi import WASI_FUNCTIONS, pack, unpack
from kernel.host import CappedBuffer, parse_progress
from kernel.sandbox import epoch_ticks, json_problem
from kernel.shipped import EXAMPLES, example_wat
from kernel.traps import brief
from tests.unit.kernel_support import RecordingHost, load, run

ROOT = Path(__file__).resolve().parents[2]
ALL = frozenset({"progress", "model_inference", "scratch_dir"})


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    yield k
    k.close()


# --- import rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("imports", "abi", "capabilities", "problem"),
    [
        ([], "reactor", frozenset(), None),
        ([("aion", "log")], "reactor", frozenset(), None),
        ([("aion", "log")], "wasi_command", frozenset(), None),
        ([("aion", "progress")], "reactor", frozenset({"progress"}), None),
        ([("aion", "progress")], "reactor", frozenset(), "import aion.progress needs"),
        ([("aion", "infer")], "wasi_command", frozenset({"model_inference"}), None),
        ([("aion", "infer")], "reactor", frozenset({"progress"}), "model_inference"),
        ([("aion", "exec")], "reactor", ALL, "aion.exec is not an aion host function"),
        ([("wasi_snapshot_preview1", "fd_write")], "wasi_command", frozenset(), None),
        ([("wasi_snapshot_preview1", "fd_write")], "reactor", ALL, "only granted to"),
        ([("wasi_snapshot_preview1", "sock_open")], "wasi_command", ALL, "not a WASI preview 1"),
        ([("wasi_unstable", "fd_write")], "wasi_command", ALL, "wasi_unstable.fd_write"),
        ([("env", "memory")], "reactor", ALL, "import env.memory is not granted"),
        ([("aion", "log"), ("env", "now"), ("env", "rand")], "reactor", ALL, "env.now"),
        ([("aion", "log")], "component", ALL, "abi 'component'"),
    ],
)
def test_import_problem(
    imports: list[tuple[str, str]], abi: str, capabilities: frozenset[str], problem: str | None
) -> None:
    found = import_problem(imports, abi, capabilities)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_import_problem_names_only_the_first_offender() -> None:
    found = import_problem([("env", "a"), ("env", "b")], "reactor", ALL)
    assert found is not None and "env.a" in found and "env.b" not in found


def test_all_wasi_preview1_functions_are_known() -> None:
    assert len(WASI_FUNCTIONS) == 46
    assert {"fd_write", "proc_exit", "path_open", "random_get", "poll_oneoff"} <= WASI_FUNCTIONS


# --- packing, JSON, progress, messages ------------------------------------------------------------


@pytest.mark.parametrize(("ptr", "length"), [(0, 0), (1024, 7), (0xFFFF_FFF0, 16), (1 << 31, 1)])
def test_pack_and_unpack_round_trip_as_i64(ptr: int, length: int) -> None:
    packed = pack(ptr, length)
    assert -(1 << 63) <= packed < 1 << 63  # what wasm's i64 can carry
    assert unpack(packed) == (ptr, length)


def test_pack_error_value() -> None:
    assert unpack(-1) == (0xFFFF_FFFF, 0xFFFF_FFFF)


@pytest.mark.parametrize(
    ("output", "ok"),
    [
        (b"{}", True),
        (b' [1, "x", null] ', True),
        (b"3.5", True),
        (b"", False),
        (b"   ", False),
        (b"NaN", False),
        (b'{"x": Infinity}', False),
        (b"{} {}", False),
        (b'"\xff"', False),
        (b"[" * 100_000, False),
    ],
)
def test_json_problem(output: bytes, ok: bool) -> None:
    assert (json_problem(output) is None) is ok


@pytest.mark.parametrize(
    ("data", "parsed"),
    [
        (b'{"percent": 50, "message": "half"}', (50.0, "half")),
        (b'{"percent": null, "message": "busy"}', (None, "busy")),
        (b'{"message": "no percent"}', (None, "no percent")),
        (b'{"percent": 0.5, "message": ""}', (0.5, "")),
        (b'{"percent": 101, "message": "x"}', None),
        (b'{"percent": -1, "message": "x"}', None),
        (b'{"percent": true, "message": "x"}', None),
        (b'{"percent": "50", "message": "x"}', None),
        (b'{"percent": 50}', None),
        (b'[50, "x"]', None),
        (b"50% done", None),
    ],
)
def test_parse_progress(data: bytes, parsed: tuple[float | None, str] | None) -> None:
    assert parse_progress(data) == parsed


def test_brief_keeps_the_cause_and_the_innermost_frame() -> None:
    frames = "\n".join(f"   {i}:     0x20 - <unknown>!f" for i in range(5000))
    text = (
        f"error while executing at wasm backtrace:\n{frames}\n\nCaused by:\n    wasm trap: boom\n"
    )
    assert brief(Exception(text)) == "boom (in <unknown>!f)"
    assert brief(Exception("one line\nsecond")) == "one line"
    assert len(brief(Exception("x" * 10_000))) <= 400


def test_epoch_ticks_round_up() -> None:
    assert [epoch_ticks(t, 10) for t in (1, 10, 11, 100, 105)] == [1, 1, 2, 10, 11]


def test_capped_buffer_counts_what_it_drops() -> None:
    buffer = CappedBuffer(5, marker=True)
    assert buffer.write(b"abc")
    assert not buffer.write(b"defg")
    assert not buffer.write(b"hij")
    assert buffer.dropped == 5
    assert buffer.value() == b"abcde\n[aion: 5 more bytes dropped, cap 5]\n"
    assert CappedBuffer(5).write(b"12345") and CappedBuffer(5).value() == b""


# --- the stand-in model ---------------------------------------------------------------------------


def test_mini_model_answers_a_json_string_of_the_top_three_words() -> None:
    answer = mini_model.infer("The cat and the dog; the CAT sat. A dog!")
    assert json.loads(answer) == "the cat dog"
    assert mini_model.infer("The cat and the dog; the CAT sat. A dog!") == answer
    assert json.loads(mini_model.infer("b a c a b")) == "b a c"  # ties: first seen first
    assert json.loads(mini_model.infer("")) == ""
    assert json.loads(mini_model.infer('quotes " and \\ escaped')) == "quotes and escaped"


def test_mini_host_serves_only_mini() -> None:
    host = mini_model.MiniHost()
    assert json.loads(host.infer("mini", "x y x")) == "x y"
    with pytest.raises(KeyError):
        host.infer("gpt", "hi")


# --- shipped examples and the ABI page ------------------------------------------------------------


def test_examples_are_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["package-data"]["kernel"] == ["examples/*.wat"]
    on_disk = {p.stem for p in (ROOT / "kernel" / "examples").glob("*.wat")}
    assert on_disk == set(EXAMPLES)
    for name in EXAMPLES:
        assert wasmtime.wat2wasm(example_wat(name))


def abi_page_examples() -> list[str]:
    page = (ROOT / "docs" / "agent-abi.md").read_text()
    return re.findall(r"```wat\n(.*?)```", page, flags=re.DOTALL)


def test_the_abi_page_reactor_example_runs(kernel: Kernel) -> None:
    reactor, _ = abi_page_examples()
    module = load(kernel, bytes(wasmtime.wat2wasm(reactor)))
    host = RecordingHost()
    result = run(kernel, module, b'{"q": 1}', capabilities=("progress",), host=host)
    assert result.ok, result
    assert json.loads(result.output or b"") == {"ok": True, "input": {"q": 1}}
    assert host.progress_events == [(50.0, "wrapping")]
    assert result.logs == b"wrapping the input\n"


def test_the_abi_page_command_example_is_wasi_echo(kernel: Kernel) -> None:
    _, command = abi_page_examples()
    assert command.strip() in example_wat("wasi_echo")
    module = load(kernel, bytes(wasmtime.wat2wasm(command)))
    result = run(kernel, module, b'{"a": "b"}', abi="wasi_command", entrypoint="_start")
    assert result.ok and result.output == b'{"a": "b"}'


def test_the_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kernel.bench", "--seconds", "0.05"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ratio kernel/bare" in done.stdout


def test_the_kernel_imports_nothing_of_the_control_plane() -> None:
    """kernel/ knows modules, inputs and quotas; Kafka and the rest stay in the worker."""
    forbidden = ("aion", "api", "streams", "projections", "faust", "aiokafka", "confluent_kafka")
    for path in (ROOT / "kernel").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"
