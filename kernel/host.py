"""The host side of the agent ABI: ``aion.log``, ``aion.progress``, ``aion.infer``, and the WASI
calls the kernel replaces so that a run is deterministic (clocks, randomness, sleeping).

The functions are defined once per linker; the run they serve is found in a thread-local (a
run is synchronous on its calling thread). They never raise: wasmtime-py keeps a host
exception in a process-wide global until the call returns, which is racy across threads, so
failures become a -1 / an errno and a log line instead.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import wasmtime

from kernel.abi import (
    ALLOC_EXPORT,
    HOST_MODULE,
    MEMORY_EXPORT,
    MODEL_INFERENCE,
    PROGRESS,
    WASI_MODULE,
    pack,
    unsigned,
)
from kernel.runs import Host

# WASI preview 1 errno values.
ERRNO_SUCCESS = 0
ERRNO_FAULT = 21
ERRNO_INVAL = 28
ERRNO_NOTSUP = 58

CLOCK_STEP_NS = 1_000_000  # the logical clock moves 1 ms per clock_time_get
# What a host call copies out of guest memory is bounded before it copies (a module may pass
# any length up to its memory size); the prompt's bound is the run's Limits.max_prompt_bytes.
MAX_MODEL_NAME_BYTES = 256
MAX_PROGRESS_BYTES = 16 << 10
RANDOM_SEED = 0


class CappedBuffer:
    """Bytes kept up to ``cap``; the rest is counted and dropped, never held in memory."""

    def __init__(self, cap: int, marker: bool = False) -> None:
        self.cap = cap
        self.marker = marker
        self.dropped = 0
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def overflowed(self) -> bool:
        return self.dropped > 0

    @property
    def size(self) -> int:
        return self._size

    def drop(self, count: int) -> None:
        """Counts ``count`` bytes as dropped without ever holding them."""
        self.dropped += max(0, count)

    def write(self, data: bytes) -> bool:
        """Keep what fits; False once anything had to be dropped."""
        room = self.cap - self._size
        if len(data) > room:
            self.dropped += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        if data:
            self._parts.append(data)
            self._size += len(data)
        return not self.overflowed

    def value(self) -> bytes:
        kept = b"".join(self._parts)
        if self.marker and self.overflowed:
            kept += f"\n[aion: {self.dropped} more bytes dropped, cap {self.cap}]\n".encode()
        return kept


@dataclass
class RunState:
    """What the host functions of one run see."""

    host: Host
    capabilities: frozenset[str]
    models: frozenset[str]
    logs: CappedBuffer
    abort: BaseException | None = None  # a trap in a guest call the host made (alloc)
    max_prompt_bytes: int = 256 << 10
    clock_ns: int = 0
    _rng: random.Random | None = None

    @property
    def rng(self) -> random.Random:
        """The same pseudo-random sequence in every run (seeded on first use: seeding costs)."""
        if self._rng is None:
            self._rng = random.Random(RANDOM_SEED)
        return self._rng

    def log(self, line: str) -> None:
        self.logs.write(line.encode("utf-8", "replace") + b"\n")


_local = threading.local()


def current() -> RunState | None:
    state: RunState | None = getattr(_local, "state", None)
    return state


@contextmanager
def active(state: RunState) -> Iterator[RunState]:
    """Makes ``state`` the run the host functions serve on this thread."""
    previous = current()
    _local.state = state
    try:
        yield state
    finally:
        _local.state = previous


# --- guest memory ------------------------------------------------------------------------------


def _memory(caller: wasmtime.Caller) -> wasmtime.Memory | None:
    memory = caller.get(MEMORY_EXPORT)
    return memory if isinstance(memory, wasmtime.Memory) else None


def in_bounds(caller: wasmtime.Caller, ptr: int, length: int) -> bool:
    """[ptr, ptr+len) lies inside the caller's exported memory (checked before any copy)."""
    memory = _memory(caller)
    return memory is not None and unsigned(ptr) + unsigned(length) <= memory.data_len(caller)


def read_guest(caller: wasmtime.Caller, ptr: int, length: int) -> bytes | None:
    """Bytes [ptr, ptr+len) of the caller's exported memory, None when out of bounds. Callers
    bound ``length`` first: the copy is as large as the guest asks."""
    memory = _memory(caller)
    ptr, length = unsigned(ptr), unsigned(length)
    if memory is None or ptr + length > memory.data_len(caller):
        return None
    return bytes(memory.read(caller, ptr, ptr + length)) if length else b""


def write_guest(caller: wasmtime.Caller, ptr: int, data: bytes) -> bool:
    memory = _memory(caller)
    ptr = unsigned(ptr)
    if memory is None or ptr + len(data) > memory.data_len(caller):
        return False
    if data:
        memory.write(caller, data, ptr)
    return True


def _text(caller: wasmtime.Caller, ptr: int, length: int, cap: int, what: str) -> str:
    """The UTF-8 text at [ptr, ptr+len), at most ``cap`` bytes; raises Refused (saying why)
    before copying anything for a length over the cap or a range outside the memory."""
    length = unsigned(length)
    if length > cap:
        raise Refused(f"the {what} is {length} bytes, above the limit of {cap}")
    data = read_guest(caller, ptr, length)
    if data is None:
        raise Refused(f"the {what} range {unsigned(ptr)}+{length} is out of memory")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(f"the {what} is not UTF-8") from None


class Refused(Exception):
    """A host call refused for its arguments; the message goes to the run's logs."""


# --- aion.* ------------------------------------------------------------------------------------


def host_log(caller: wasmtime.Caller, ptr: int, length: int) -> None:
    state = current()
    if state is None:
        return
    try:
        if not in_bounds(caller, ptr, length):
            state.log(f"[aion.log: range {unsigned(ptr)}+{unsigned(length)} is out of memory]")
            return
        # Copy only what the log can still keep; the rest is counted as dropped, never read.
        length = unsigned(length)
        room = max(0, state.logs.cap - state.logs.size)
        if length <= room:
            data = read_guest(caller, ptr, length) or b""
            state.logs.write(data if data.endswith(b"\n") else data + b"\n")
            return
        kept = read_guest(caller, ptr, room) or b""
        last = read_guest(caller, unsigned(ptr) + length - 1, 1)
        state.logs.write(kept)
        state.logs.drop(length - room + (0 if last == b"\n" else 1))  # and its newline
    except Exception as exc:  # never let an exception cross into wasm (see module docstring)
        state.log(f"[aion.log failed: {exc}]")


def parse_progress(data: bytes) -> tuple[float | None, str] | None:
    """(percent, message) from ``{"percent": number|null, "message": string}``, else None."""
    try:
        value: Any = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("message"), str):
        return None
    percent = value.get("percent")
    if percent is None:
        return None, value["message"]
    if isinstance(percent, bool) or not isinstance(percent, int | float):
        return None
    if not math.isfinite(percent) or not 0 <= percent <= 100:
        return None
    return float(percent), value["message"]


def host_progress(caller: wasmtime.Caller, ptr: int, length: int) -> None:
    state = current()
    if state is None:
        return
    try:
        if PROGRESS not in state.capabilities:
            state.log("[aion.progress: the capability progress is not granted]")
            return
        if unsigned(length) > MAX_PROGRESS_BYTES:
            state.log(
                f"[aion.progress ignored: {unsigned(length)} bytes, above the limit of "
                f"{MAX_PROGRESS_BYTES}]"
            )
            return
        data = read_guest(caller, ptr, length)
        parsed = parse_progress(data) if data is not None else None
        if parsed is None:
            shown = (data or b"")[:200].decode("utf-8", "replace")
            state.log(
                '[aion.progress ignored: expected {"percent": number 0-100 or null, '
                f'"message": string}}, got {shown!r}]'
            )
            return
        state.host.progress(*parsed)
    except Exception as exc:
        state.log(f"[aion.progress failed: {exc}]")


def host_infer(
    caller: wasmtime.Caller, model_ptr: int, model_len: int, prompt_ptr: int, prompt_len: int
) -> int:
    state = current()
    if state is None:
        return -1
    try:
        return _infer(state, caller, model_ptr, model_len, prompt_ptr, prompt_len)
    except Exception as exc:
        state.log(f"[aion.infer failed: {exc}]")
        return -1


def _infer(
    state: RunState,
    caller: wasmtime.Caller,
    model_ptr: int,
    model_len: int,
    prompt_ptr: int,
    prompt_len: int,
) -> int:
    if MODEL_INFERENCE not in state.capabilities:
        state.log("[aion.infer: the capability model_inference is not granted]")
        return -1
    try:
        model = _text(caller, model_ptr, model_len, MAX_MODEL_NAME_BYTES, "model name")
        prompt = _text(caller, prompt_ptr, prompt_len, state.max_prompt_bytes, "prompt")
    except Refused as refused:
        state.log(f"[aion.infer refused: {refused}]")
        return -1
    if model not in state.models:
        state.log(f"[aion.infer: model {model!r} is not one of this agent's models]")
        return -1
    try:
        answer = state.host.infer(model, prompt)
    except KeyError:
        state.log(f"[aion.infer: model {model!r} is unknown to the host]")
        return -1
    except Exception as exc:
        state.log(f"[aion.infer: model {model!r} failed: {exc}]")
        return -1
    if not isinstance(answer, str):
        state.log(f"[aion.infer: model {model!r} did not answer with text]")
        return -1
    data = answer.encode("utf-8")
    alloc = caller.get(ALLOC_EXPORT)
    if not isinstance(alloc, wasmtime.Func):
        state.log("[aion.infer: the module exports no alloc to receive the answer]")
        return -1
    try:
        ptr = alloc(caller, len(data))
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        state.abort = exc  # out of fuel, timeout or a trap inside alloc: the run fails with it
        return -1
    if not isinstance(ptr, int) or not write_guest(caller, ptr, data):
        state.log("[aion.infer: alloc returned a pointer outside memory]")
        return -1
    return pack(ptr, len(data))


# --- deterministic WASI replacements -------------------------------------------------------------


def wasi_clock_res_get(caller: wasmtime.Caller, clock_id: int, ptr: int) -> int:
    try:
        ok = write_guest(caller, ptr, CLOCK_STEP_NS.to_bytes(8, "little"))
        return ERRNO_SUCCESS if ok else ERRNO_FAULT
    except Exception:
        return ERRNO_FAULT


def wasi_clock_time_get(caller: wasmtime.Caller, clock_id: int, precision: int, ptr: int) -> int:
    state = current()
    if state is None:
        return ERRNO_INVAL
    try:
        now = state.clock_ns
        state.clock_ns += CLOCK_STEP_NS
        ok = write_guest(caller, ptr, now.to_bytes(8, "little"))
        return ERRNO_SUCCESS if ok else ERRNO_FAULT
    except Exception:
        return ERRNO_FAULT


def wasi_random_get(caller: wasmtime.Caller, ptr: int, length: int) -> int:
    state = current()
    if state is None:
        return ERRNO_INVAL
    try:
        memory = _memory(caller)
        if memory is None or unsigned(ptr) + unsigned(length) > memory.data_len(caller):
            return ERRNO_FAULT
        write_guest(caller, ptr, state.rng.randbytes(unsigned(length)))
        return ERRNO_SUCCESS
    except Exception:
        return ERRNO_FAULT


def wasi_poll_oneoff(caller: wasmtime.Caller, subs: int, events: int, count: int, out: int) -> int:
    """Sleeping would block the worker thread beyond the epoch deadline: not granted."""
    return ERRNO_NOTSUP


# --- linkers -----------------------------------------------------------------------------------

_I32 = wasmtime.ValType.i32()
_I64 = wasmtime.ValType.i64()


def define_host(linker: wasmtime.Linker) -> None:
    """``aion.log``, ``aion.progress``, ``aion.infer`` (capabilities are checked per run)."""
    ptr_len = wasmtime.FuncType([_I32, _I32], [])
    linker.define_func(HOST_MODULE, "log", ptr_len, host_log, access_caller=True)
    linker.define_func(HOST_MODULE, "progress", ptr_len, host_progress, access_caller=True)
    infer_type = wasmtime.FuncType([_I32, _I32, _I32, _I32], [_I64])
    linker.define_func(HOST_MODULE, "infer", infer_type, host_infer, access_caller=True)


def define_wasi(linker: wasmtime.Linker) -> None:
    """wasmtime's WASI preview 1, with clocks, randomness and sleep made deterministic."""
    linker.define_wasi()
    linker.allow_shadowing = True
    overrides: dict[str, tuple[list[wasmtime.ValType], Callable[..., int]]] = {
        "clock_res_get": ([_I32, _I32], wasi_clock_res_get),
        "clock_time_get": ([_I32, _I64, _I32], wasi_clock_time_get),
        "random_get": ([_I32, _I32], wasi_random_get),
        "poll_oneoff": ([_I32, _I32, _I32, _I32], wasi_poll_oneoff),
    }
    for name, (params, func) in overrides.items():
        linker.define_func(
            WASI_MODULE, name, wasmtime.FuncType(params, [_I32]), func, access_caller=True
        )
    linker.allow_shadowing = False
