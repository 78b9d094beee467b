"""Turning what wasmtime raises into a run's reason and a short, readable message."""

from __future__ import annotations

import re

import wasmtime

from kernel.engine import MAX_WASM_STACK
from kernel.runs import MEMORY_LIMIT, OUT_OF_FUEL, TIMEOUT, TRAP, Limits

MAX_MESSAGE = 400
FRAME = re.compile(r"^\s*0:\s+(?:0x[0-9a-f]+ - )?(.+)$")


def brief(exc: BaseException) -> str:
    """wasmtime's cause ("integer divide by zero") and the innermost frame, not the whole
    backtrace (a stack overflow prints thousands of frames)."""
    text = str(exc).strip()
    lines = text.splitlines()
    if "Caused by:" in lines:
        at = lines.index("Caused by:")
        cause = " ".join(line.strip() for line in lines[at + 1 :] if line.strip())
        cause = cause.removeprefix("wasm trap: ")
        frame = next((m.group(1) for m in map(FRAME.match, lines[:at]) if m), None)
        text = f"{cause} (in {frame})" if frame else cause
    elif lines:
        text = lines[0]
    text = text or type(exc).__name__
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def classify(exc: BaseException, limits: Limits, memory_full: bool) -> tuple[str, str] | None:
    """(reason, message) for an exception out of a run, None for a clean ``proc_exit(0)``.

    ``memory_full``: the instance's memory cannot grow by one more page within the limit. A trap
    then is reported as ``memory_limit``: memory.grow returns -1 at the limit and allocators
    answer with a trap (``unreachable``), so this is how a refused grow shows.
    """
    if isinstance(exc, wasmtime.ExitTrap):
        if exc.code == 0:
            return None
        return TRAP, f"the module exited with code {exc.code} (proc_exit)"
    code = exc.trap_code if isinstance(exc, wasmtime.Trap) else None
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return OUT_OF_FUEL, f"out of fuel: all {limits.fuel} units were consumed ({brief(exc)})"
    if code == wasmtime.TrapCode.INTERRUPT:
        return TIMEOUT, f"timeout: the run took longer than {limits.timeout_ms} ms"
    if code == wasmtime.TrapCode.STACK_OVERFLOW:
        return TRAP, (
            f"stack overflow: the wasm call stack ({MAX_WASM_STACK >> 10} KiB) is exhausted, "
            "deep or unbounded recursion"
        )
    if memory_full:
        return MEMORY_LIMIT, (
            f"memory limit: the module trapped with its memory at the {limits.memory_mb} MiB "
            f"limit, after memory.grow was refused ({brief(exc)})"
        )
    return TRAP, brief(exc)


def instantiation_problem(exc: BaseException, limits: Limits) -> tuple[str, str] | None:
    """(memory_limit, message) when instantiation failed on a declared minimum above the store's
    limits ("memory minimum size of N pages exceeds memory limits"), else None."""
    text = str(exc)
    if "minimum size of" in text and "exceeds" in text:
        what = "table_elements" if "table" in text else f"{limits.memory_mb} MiB"
        return MEMORY_LIMIT, f"memory limit: {brief(exc)} (limit {what})"
    return None
