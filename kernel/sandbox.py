"""One run: a fresh Store with the run's quotas, instantiate, call by the ABI, read the output,
and turn whatever happened into a RunResult (a run never raises for what the module does)."""

from __future__ import annotations

import json
import logging
import math
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import wasmtime

from kernel.abi import (
    ALLOC_EXPORT,
    MANIFEST_DEFAULT_ENTRYPOINT,
    MEMORY_EXPORT,
    REACTOR,
    SCRATCH_DIR,
    SCRATCH_GUEST_PATH,
    WASI_COMMAND,
    WASI_ENTRYPOINT,
    import_problem,
    unpack,
    unsigned,
)
from kernel.host import CappedBuffer, RunState, active
from kernel.module_info import ModuleInfo, Signature, module_info
from kernel.runs import (
    INVALID_OUTPUT,
    MEMORY_LIMIT,
    OUTPUT_TOO_LARGE,
    REFUSED,
    TRAP,
    Host,
    Limits,
    RunResult,
)
from kernel.scratch import ScratchGuard, clear
from kernel.traps import brief, classify, instantiation_problem
from kernel.wasi_stdio import Stdio, capped_sink, set_stdin

log = logging.getLogger(__name__)

WASM_PAGE = 64 << 10
I32, I64 = "i32", "i64"
INITIALIZE_EXPORT = "_initialize"  # a reactor's optional one-time setup (toolchain convention)


class Failure(Exception):
    """A run ends here with ``reason``: raised by the kernel's own checks, never by wasm."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Sandbox:
    """The state of one run; use once, on one thread."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        linker: wasmtime.Linker,
        limits: Limits,
        host: Host,
        capabilities: frozenset[str],
        models: frozenset[str],
        epoch_ticks: int,
    ) -> None:
        self.engine = engine
        self.linker = linker
        self.limits = limits
        self.epoch_ticks = epoch_ticks
        self.state = RunState(
            host,
            capabilities,
            models,
            CappedBuffer(limits.max_log_bytes, marker=True),
            max_prompt_bytes=limits.max_prompt_bytes,
        )
        self.store: wasmtime.Store | None = None
        self.instance: wasmtime.Instance | None = None
        self.stdout: CappedBuffer | None = None
        self.started = time.monotonic_ns()
        self._caught: list[BaseException] = []
        self.stdio = Stdio()
        self.scratch: ScratchGuard | None = None

    # --- the run -------------------------------------------------------------------------------

    def run(
        self,
        module: wasmtime.Module,
        abi: str,
        entrypoint: str,
        input: bytes,
        scratch_dir: Path | None,
    ) -> RunResult:
        try:
            result = self._run(module, abi, entrypoint, input, scratch_dir)
            if self.scratch is not None and (self.scratch.exceeded or self._over_quota()):
                clear(self.scratch.root)  # an over-quota run leaves no files behind
            return result
        finally:
            self._release()

    def _run(
        self,
        module: wasmtime.Module,
        abi: str,
        entrypoint: str,
        input: bytes,
        scratch_dir: Path | None,
    ) -> RunResult:
        try:
            self._check_limits()
            info = module_info(module)
            problem = import_problem(list(info.imports), abi, self.state.capabilities)
            if problem:
                raise Failure(REFUSED, problem)
            self._check_declared_memory(info)
            if abi == REACTOR:
                self._check_reactor_exports(info, entrypoint)
            else:
                entrypoint = self._command_entrypoint(info, entrypoint)
            store = self._new_store()
            if abi == WASI_COMMAND:
                self.stdout = CappedBuffer(self.limits.max_output_bytes)
                store.set_wasi(self._wasi_config(input, scratch_dir))
                if self._scratch_granted(scratch_dir):
                    assert scratch_dir is not None
                    self.scratch = ScratchGuard(scratch_dir, self.limits, self.epoch_ticks, 1)
                    self.scratch.install(store)
            with active(self.state):
                exports = self._instantiate(store, module)
                if abi == REACTOR:
                    output = self._call_reactor(store, exports, entrypoint, input)
                else:
                    output = self._call_command(store, exports, entrypoint)
            self._check_scratch()
            return self._succeeded(output)
        except Failure as failure:
            self._caught.append(failure)
            if self.state.abort is not None:
                return self._trapped(self.state.abort)
            return self.failed(failure.reason, failure.message)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            self._caught.append(exc)
            return self._trapped(exc)
        except Exception as exc:  # a kernel bug must not take the worker down either
            self._caught.append(exc)
            log.exception("kernel error while running a module")
            return self.failed(TRAP, f"kernel error: {type(exc).__name__}: {exc}")

    def _release(self) -> None:
        """Drops the Store (and its linear memory) now, not at the next cycle collection: a
        wasmtime trap sits in a reference cycle (its traceback holds the frame that raised it,
        whose locals hold the trap and the Store). Then unregisters the run's stdio sinks."""
        pending = [*self._caught, self.state.abort]
        seen: set[int] = set()
        while pending:
            exc = pending.pop()
            if exc is None or id(exc) in seen:
                continue
            seen.add(id(exc))
            if exc.__traceback__ is not None:
                traceback.clear_frames(exc.__traceback__)
                exc.__traceback__ = None
            pending += [exc.__context__, exc.__cause__]
        self._caught.clear()
        self.state.abort = None
        self.instance = None
        self.store = None
        self.stdio.close()
        if self.scratch is not None:
            self.scratch.close()

    def _check_limits(self) -> None:
        limits = self.limits
        quotas = (limits.fuel, limits.memory_mb, limits.timeout_ms, limits.table_elements)
        caps = (
            limits.max_output_bytes,
            limits.max_log_bytes,
            limits.max_scratch_bytes,
            limits.max_scratch_entries,
            limits.max_prompt_bytes,
        )
        if min(quotas) < 1 or min(caps) < 0:
            raise Failure(REFUSED, f"invalid limits: {limits}")

    def _new_store(self) -> wasmtime.Store:
        store = wasmtime.Store(self.engine)
        store.set_limits(
            memory_size=self.limits.memory_bytes,
            table_elements=self.limits.table_elements,
            instances=1,
            memories=1,
        )
        store.set_fuel(self.limits.fuel)
        store.set_epoch_deadline(self.epoch_ticks)
        self.store = store
        return store

    def _check_declared_memory(self, info: ModuleInfo) -> None:
        """A declared minimum above the limit, told before instantiating. (An unexported memory
        is only seen by wasmtime: "memory minimum size of N pages exceeds memory limits".)"""
        need = info.min_memory_pages * WASM_PAGE
        if need > self.limits.memory_bytes:
            raise Failure(
                MEMORY_LIMIT,
                f"memory limit: the module declares a minimum memory of {need >> 20} MiB "
                f"({info.min_memory_pages} pages), above the limit of {self.limits.memory_mb} MiB",
            )

    def _check_reactor_exports(self, info: ModuleInfo, entrypoint: str) -> None:
        if MEMORY_EXPORT not in info.memories:
            raise Failure(REFUSED, "a reactor must export its memory as 'memory'")
        _check_signature(info, ALLOC_EXPORT, ((I32,), (I32,)), "alloc(len) -> ptr")
        _check_signature(info, entrypoint, ((I32, I32), (I64,)), "the entrypoint")

    def _command_entrypoint(self, info: ModuleInfo, entrypoint: str) -> str:
        name = entrypoint
        if name == MANIFEST_DEFAULT_ENTRYPOINT and info.signature(name) is None:
            name = WASI_ENTRYPOINT  # a manifest that kept the default entrypoint
        _check_signature(info, name, ((), ()), "the command's entrypoint")
        return name

    def _instantiate(self, store: wasmtime.Store, module: wasmtime.Module) -> Mapping[str, Any]:
        try:
            self.instance = self.linker.instantiate(store, module)
        except wasmtime.Trap:
            raise  # a start function trapped: classified like any trap
        except wasmtime.WasmtimeError as exc:
            if isinstance(exc, wasmtime.ExitTrap):
                raise
            problem = instantiation_problem(exc, self.limits)
            if problem:
                raise Failure(*problem) from None
            raise Failure(REFUSED, f"cannot instantiate the module: {brief(exc)}") from None
        return self.instance.exports(store)

    def _call_reactor(
        self, store: wasmtime.Store, exports: Mapping[str, Any], entrypoint: str, input: bytes
    ) -> bytes:
        memory: wasmtime.Memory = exports[MEMORY_EXPORT]
        init = exports.get(INITIALIZE_EXPORT)
        if isinstance(init, wasmtime.Func) and not init.type(store).params:
            init(store)
        ptr = unsigned(exports[ALLOC_EXPORT](store, len(input)))
        if ptr + len(input) > memory.data_len(store):
            raise Failure(TRAP, f"alloc({len(input)}) returned {ptr}, outside the memory")
        if input:
            memory.write(store, input, ptr)
        packed = exports[entrypoint](store, ptr, len(input))
        if packed == -1:
            raise Failure(TRAP, f"{entrypoint} returned -1 (the agent reports an error; see logs)")
        out_ptr, out_len = unpack(packed)
        self._check_size(out_len)
        if out_ptr + out_len > memory.data_len(store):
            raise Failure(
                INVALID_OUTPUT, f"the output range {out_ptr}+{out_len} lies outside the memory"
            )
        return bytes(memory.read(store, out_ptr, out_ptr + out_len)) if out_len else b""

    def _call_command(
        self, store: wasmtime.Store, exports: Mapping[str, Any], entrypoint: str
    ) -> bytes:
        try:
            exports[entrypoint](store)
        except wasmtime.ExitTrap as exc:
            if exc.code != 0:
                raise
        assert self.stdout is not None
        if self.stdout.overflowed:
            self._check_size(self.stdout.cap + self.stdout.dropped)
        return self.stdout.value()

    def _check_size(self, size: int) -> None:
        cap = self.limits.max_output_bytes
        if size > cap:
            raise Failure(OUTPUT_TOO_LARGE, f"the output is {size} bytes, above the cap of {cap}")

    # --- WASI ------------------------------------------------------------------------------------

    def _wasi_config(self, input: bytes, scratch_dir: Path | None) -> wasmtime.WasiConfig:
        """stdin = the input, stdout capped into memory, stderr into the logs, nothing else
        (no args, env, network; files only under /scratch when granted)."""
        config = wasmtime.WasiConfig()
        set_stdin(config, input)
        assert self.stdout is not None
        self.stdio.attach(
            config,
            stdout=capped_sink(self.stdout, refuse_overflow=True),
            stderr=capped_sink(self.state.logs, refuse_overflow=False),
        )
        if self._scratch_granted(scratch_dir):
            config.preopen_dir(str(scratch_dir), SCRATCH_GUEST_PATH)
        return config

    def _scratch_granted(self, scratch_dir: Path | None) -> bool:
        return SCRATCH_DIR in self.state.capabilities and scratch_dir is not None

    def _over_quota(self) -> bool:
        """Also for a run that failed otherwise: its files are then not kept either."""
        assert self.scratch is not None
        try:
            return self.scratch.check() is not None
        except OSError:
            return True

    def _check_scratch(self) -> None:
        """The quota once more when the module is done: what it wrote after the last tick."""
        if self.scratch is None:
            return
        problem = self.scratch.check()
        if problem is not None:
            raise Failure(OUTPUT_TOO_LARGE, f"{problem} when the run ended")

    # --- outcomes --------------------------------------------------------------------------------

    def _succeeded(self, output: bytes) -> RunResult:
        if self.state.abort is not None:
            return self._trapped(self.state.abort)
        problem = json_problem(output)
        if problem:
            return self.failed(INVALID_OUTPUT, problem)
        return self._result(True, output, None, "ok")

    def _trapped(self, exc: BaseException) -> RunResult:
        if self.scratch is not None and self.scratch.stopped is not None:
            return self.failed(*self.scratch.stopped)  # the scratch guard ended the run
        if self.state.abort is not None and exc is not self.state.abort:
            return self._trapped(self.state.abort)  # the first failure, inside a host call
        if self.stdout is not None and self.stdout.overflowed:
            size = self.stdout.cap + self.stdout.dropped
            return self.failed(
                OUTPUT_TOO_LARGE,
                f"the output went over the cap of {self.stdout.cap} bytes ({size} written)",
            )
        outcome = classify(exc, self.limits, self._memory_full())
        if outcome is None:  # proc_exit(0) raised where a return was expected
            return self._succeeded(self.stdout.value() if self.stdout else b"")
        return self.failed(*outcome)

    def _memory_full(self) -> bool:
        """The exported memory cannot grow one more page within the limit."""
        if self.store is None or self.instance is None:
            return False
        try:
            exports = self.instance.exports(self.store)
            memories = [item for item in exports.values() if isinstance(item, wasmtime.Memory)]
            return any(
                m.data_len(self.store) + WASM_PAGE > self.limits.memory_bytes for m in memories
            )
        except wasmtime.WasmtimeError:
            return False

    def failed(self, reason: str, message: str) -> RunResult:
        return self._result(False, None, reason, message)

    def _result(self, ok: bool, output: bytes | None, reason: str | None, msg: str) -> RunResult:
        return RunResult(
            ok=ok,
            output=output,
            reason=reason,
            message=msg,
            fuel_used=self._fuel_used(),
            duration_ms=(time.monotonic_ns() - self.started) // 1_000_000,
            logs=self.state.logs.value(),
        )

    def _fuel_used(self) -> int:
        if self.store is None:
            return 0
        try:
            return max(0, self.limits.fuel - self.store.get_fuel())
        except wasmtime.WasmtimeError:
            return 0


def epoch_ticks(timeout_ms: int, tick_ms: int) -> int:
    return max(1, math.ceil(timeout_ms / tick_ms))


def json_problem(output: bytes) -> str | None:
    """Why ``output`` is not one JSON text (UTF-8, no NaN/Infinity), or None."""
    if not output.strip():
        return "the output is empty, not JSON"

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        json.loads(output.decode("utf-8"), parse_constant=refuse)
    except UnicodeDecodeError:
        return "the output is not UTF-8, not JSON"
    except (ValueError, RecursionError) as exc:
        shown = output[:80].decode("utf-8", "replace")
        return f"the output is not JSON ({exc}): {shown!r}"
    return None


def _check_signature(info: ModuleInfo, name: str, want: Signature, role: str) -> None:
    have = info.signature(name)
    if have is None:
        raise Failure(REFUSED, f"the module exports no function {name!r} ({role})")
    if have != want:

        def show(sig: Signature) -> str:
            return f"({', '.join(sig[0])}) -> ({', '.join(sig[1])})"

        raise Failure(REFUSED, f"export {name!r} ({role}) must be {show(want)}, not {show(have)}")
