"""A run's /scratch under a disk quota.

wasmtime's WASI has no quota of its own (a preopened directory is the host's directory), and a
size-bounded filesystem needs root. So the kernel measures the directory itself: every epoch
tick while the module runs (through wasmtime's epoch-deadline callback, on the run's own thread,
so only that run is stopped), and once more when it ends. What is counted: every entry (file,
directory, link) and, per file, the larger of its apparent size and the blocks it holds (a
sparse file of a terabyte counts as a terabyte). A run over its quota fails, and its files are
removed before anyone reads them.

Between two ticks a module can write what it writes in one tick (10 ms by default), and a single
``fd_write`` is bounded by the module's memory: that is the overshoot the disk must absorb.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from wasmtime import _bindings as bindings
from wasmtime import _ffi as ffi

from kernel.runs import OUTPUT_TOO_LARGE, TIMEOUT, TRAP, Limits

CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE

# The callback and finalizer types exactly as the binding declares them (ctypes compares the
# function-pointer types by identity).
_CALLBACK, _FINALIZER = (
    bindings._wasmtime_store_epoch_deadline_callback.argtypes[i] for i in (1, 3)
)
_NO_FINALIZER = _FINALIZER()  # NULL: see kernel/wasi_stdio.py for why there is no finalizer
_guards: dict[int, ScratchGuard] = {}
_keys = itertools.count(1)
_lock = threading.Lock()


@dataclass(frozen=True)
class Usage:
    """What a scratch directory holds; the walk stops early once over either bound."""

    bytes: int
    entries: int


def usage(root: Path, max_bytes: int, max_entries: int) -> Usage:
    """Bytes and entries under ``root`` (links are not followed), counted until over a bound."""
    total, entries = 0, 0
    pending = [str(root)]
    while pending:
        try:
            with os.scandir(pending.pop()) as found:
                for entry in found:
                    entries += 1
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(entry.path)
                    else:
                        total += max(info.st_size, info.st_blocks * 512)
                    if total > max_bytes or entries > max_entries:
                        return Usage(total, entries)
        except FileNotFoundError:
            continue  # removed by the module between listing and reading
    return Usage(total, entries)


def quota_problem(found: Usage, limits: Limits) -> str | None:
    """Why ``found`` is over the run's scratch quota, or None."""
    if found.bytes > limits.max_scratch_bytes:
        return (
            f"scratch quota: /scratch holds over {found.bytes} bytes, above the quota of "
            f"{limits.max_scratch_bytes} bytes"
        )
    if found.entries > limits.max_scratch_entries:
        return (
            f"scratch quota: /scratch holds over {limits.max_scratch_entries} files and "
            "directories, the most a run may leave"
        )
    return None


def clear(root: Path) -> None:
    """Removes everything under ``root`` (an over-quota run's files are never kept)."""
    with os.scandir(root) as found:
        for entry in found:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink(missing_ok=True)


class ScratchGuard:
    """Checks one run's scratch directory at every epoch tick and stops the run over quota.

    Installing it replaces the store's plain epoch deadline, so it also ends the run at its
    timeout (``stopped`` then says ``timeout``, as the plain deadline would)."""

    def __init__(self, root: Path, limits: Limits, total_ticks: int, check_ticks: int) -> None:
        self.root = root
        self.limits = limits
        self.remaining = total_ticks
        self.check_ticks = max(1, check_ticks)
        self.stopped: tuple[str, str] | None = None
        self.exceeded = False
        self.key = 0

    def install(self, store: wasmtime.Store) -> None:
        with _lock:
            self.key = next(_keys)
            _guards[self.key] = self
        store.set_epoch_deadline(self._next_delta())
        ffi.wasmtime_store_epoch_deadline_callback(
            store.ptr(), _on_deadline, self.key, _NO_FINALIZER
        )

    def close(self) -> None:
        with _lock:
            _guards.pop(self.key, None)

    def check(self) -> str | None:
        """Why the directory is over quota now (remembered), or None."""
        problem = quota_problem(
            usage(self.root, self.limits.max_scratch_bytes, self.limits.max_scratch_entries),
            self.limits,
        )
        if problem is not None:
            self.exceeded = True
        return problem

    def _next_delta(self) -> int:
        delta = min(self.check_ticks, self.remaining)
        self.remaining -= delta
        return delta

    def on_deadline(self) -> int:
        """Ticks until the next call, or 0 to stop the run (``stopped`` says why)."""
        if self.remaining <= 0:
            self.stopped = (
                TIMEOUT,
                f"timeout: the run took longer than {self.limits.timeout_ms} ms",
            )
            return 0
        try:
            problem = self.check()
        except OSError:
            problem = None  # measured again at the next tick; the timeout still holds
        if problem is not None:
            self.stopped = (OUTPUT_TOO_LARGE, f"{problem}; the run was stopped")
            return 0
        return self._next_delta()


@_CALLBACK
def _on_deadline(
    context: object,
    key: int | None,
    delta: ctypes._Pointer[ctypes.c_uint64],
    kind: ctypes._Pointer[ctypes.c_uint8],
) -> int:
    """wasmtime's epoch-deadline callback: NULL to go on for ``delta`` ticks, an error to trap.
    It never raises (a Python exception cannot cross into wasmtime)."""
    guard = _guards.get(key or 0)
    try:
        ticks = guard.on_deadline() if guard is not None else 0
    except Exception as exc:  # a kernel bug: stop this run rather than let it go unchecked
        ticks = 0
        if guard is not None:
            guard.stopped = (TRAP, f"kernel error in the scratch quota check: {exc}")
    if ticks > 0:
        delta[0] = ticks
        kind[0] = CONTINUE
        return 0
    message = (guard.stopped[1] if guard and guard.stopped else "the run was stopped").encode()
    error = ffi.wasmtime_error_new(ctypes.create_string_buffer(message))
    return ctypes.cast(error, ctypes.c_void_p).value or 0
