"""A WASI command's stdio without files: stdin from memory, stdout/stderr into capped buffers.

wasmtime-py has ``stdout_custom``, but its finalizer is a Python callback that wasmtime runs on
one of its tokio threads whenever the stream is finally dropped: during interpreter shutdown
that thread is killed taking the GIL, and the process ends with "panic in a function that
cannot unwind". So the C API is called here with no finalizer; the kernel unregisters a run's
sinks itself. Writes reach the sinks on a wasmtime thread while the guest waits in fd_write.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import threading
from collections.abc import Callable

import wasmtime
from wasmtime import _ffi as ffi

from kernel.host import CappedBuffer

Sink = Callable[[bytes], int | None]  # bytes written (None: all), or -errno

_sinks: dict[int, Sink] = {}
_keys = itertools.count(1)
_lock = threading.Lock()
_WRITE = ctypes.CFUNCTYPE(
    ctypes.c_ssize_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte), ctypes.c_size_t
)
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()  # a NULL function pointer


@_WRITE
def _write(key: int | None, data: ctypes._Pointer[ctypes.c_ubyte], size: int) -> int:
    sink = _sinks.get(key or 0)
    if sink is None:  # the run is over: drop it
        return size
    try:
        written = sink(ctypes.string_at(data, size))
    except Exception:
        return -errno.EIO
    return size if written is None else written


def set_stdin(config: wasmtime.WasiConfig, data: bytes) -> None:
    """stdin from memory (the C API's wasi_config_set_stdin_bytes; wasmtime-py only takes a
    file). The config takes ownership of the vector (wasmtime's wasi.h)."""
    vec = ffi.wasm_byte_vec_t()
    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), buf)
    ffi.wasi_config_set_stdin_bytes(config.ptr(), ctypes.byref(vec))


def capped_sink(buffer: CappedBuffer, refuse_overflow: bool) -> Sink:
    """Bytes beyond the cap are dropped as they come, so a module writing in a loop costs no
    memory. ``refuse_overflow`` (stdout) then fails the write (EFBIG), which stops a
    well-behaved module early; otherwise (stderr) it pretends success: losing logs is no
    failure."""

    def write(data: bytes) -> int | None:
        if buffer.write(data) or not refuse_overflow:
            return None
        return -errno.EFBIG

    return write


class Stdio:
    """One run's stdout/stderr sinks, registered until ``close``."""

    def __init__(self) -> None:
        self.keys: list[int] = []

    def attach(self, config: wasmtime.WasiConfig, stdout: Sink, stderr: Sink) -> None:
        setters = (ffi.wasi_config_set_stdout_custom, ffi.wasi_config_set_stderr_custom)
        for setter, sink in zip(setters, (stdout, stderr), strict=True):
            with _lock:
                key = next(_keys)
                _sinks[key] = sink
            self.keys.append(key)
            setter(config.ptr(), _write, key, _NO_FINALIZER)

    def close(self) -> None:
        with _lock:
            for key in self.keys:
                _sinks.pop(key, None)
        self.keys.clear()
