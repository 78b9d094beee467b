"""Helpers shared by the kernel tests: compile the hostile modules and examples, run them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from kernel import Host, Kernel, Limits, RunResult, digest_of
from kernel.shipped import example_wasm

MODULES = Path(__file__).parent / "kernel_modules"
LIMITS = Limits(fuel=50_000_000, memory_mb=16, timeout_ms=10_000)


def hostile_wasm(name: str) -> bytes:
    return bytes(wasmtime.wat2wasm((MODULES / f"{name}.wat").read_text()))


def load(kernel: Kernel, wasm: bytes) -> wasmtime.Module:
    return kernel.module(digest_of(wasm), wasm)


def hostile(kernel: Kernel, name: str) -> wasmtime.Module:
    return load(kernel, hostile_wasm(name))


def example(kernel: Kernel, name: str) -> wasmtime.Module:
    return load(kernel, example_wasm(name))


@dataclass
class RecordingHost:
    """A Host that records progress and answers from ``answers`` (KeyError for other models)."""

    answers: dict[str, str] = field(default_factory=dict)
    progress_events: list[tuple[float | None, str]] = field(default_factory=list)
    prompts: list[tuple[str, str]] = field(default_factory=list)
    fail_with: Exception | None = None

    def progress(self, percent: float | None, message: str) -> None:
        self.progress_events.append((percent, message))

    def infer(self, model: str, prompt: str) -> str:
        self.prompts.append((model, prompt))
        if self.fail_with is not None:
            raise self.fail_with
        return self.answers[model]


def run(
    kernel: Kernel,
    module: wasmtime.Module,
    input: bytes = b"{}",
    *,
    abi: str = "reactor",
    entrypoint: str = "run",
    limits: Limits = LIMITS,
    capabilities: tuple[str, ...] = (),
    host: Host | None = None,
    models: tuple[str, ...] = (),
    scratch_dir: Path | None = None,
) -> RunResult:
    return kernel.run(
        module,
        abi,
        entrypoint,
        input,
        limits,
        frozenset(capabilities),
        host if host is not None else RecordingHost(),
        frozenset(models),
        scratch_dir,
    )
