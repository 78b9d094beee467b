"""Compiled modules: compiled once per digest, kept in memory, and serialized to a cache directory
so that a restarted worker deserializes (~30 µs) instead of compiling (ms to seconds)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from kernel.engine import engine_fingerprint

MODULES_IN_MEMORY = 256  # compiled modules kept in memory; the disk cache keeps every one
LOCK_STRIPES = 64  # concurrent compilations of different modules rarely share a stripe
log = logging.getLogger(__name__)

DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
MAGIC = b"AION-CWASM\n"
WASM_MAGIC = b"\0asm"


class ModuleError(ValueError):
    """The bytes are not the module the digest names, or not a valid WebAssembly module."""


def digest_of(wasm: bytes) -> str:
    return "sha256:" + hashlib.sha256(wasm).hexdigest()


def digest_hex(digest: str) -> str:
    match = DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise ModuleError(f"digest {digest!r} is not sha256: followed by 64 lower-case hex digits")
    return match.group(1)


@dataclass
class CacheStats:
    """Counters proving where a module came from (tests and the benchmark read them)."""

    compiles: int = 0
    memory_hits: int = 0
    disk_hits: int = 0
    disk_rejects: int = 0  # a file for another engine, corrupt, or refused by wasmtime
    disk_writes: int = 0


class ModuleCache:
    """Digest -> compiled Module, in memory and (when ``cache_dir`` is given) on disk.

    A file is named by digest and engine fingerprint, and starts with the fingerprint and the
    sha256 of its payload: wasmtime's deserialize trusts its input, so a file from another
    version or a corrupt one is never handed to it; it is recompiled and rewritten instead.
    The directory must be writable by the kernel only (a planted file is native code).
    """

    def __init__(
        self,
        engine: wasmtime.Engine,
        cache_dir: Path | None = None,
        in_memory: int = MODULES_IN_MEMORY,
    ) -> None:
        self.engine = engine
        self.cache_dir = cache_dir
        self.fingerprint = engine_fingerprint()
        self.stats = CacheStats()
        # Bounded (issue 17): the least recently used compiled module leaves memory first; the
        # disk cache still has it. One lock per stripe, not per digest ever seen.
        self.in_memory = in_memory
        self._modules: OrderedDict[str, wasmtime.Module] = OrderedDict()
        self._locks = tuple(threading.Lock() for _ in range(LOCK_STRIPES))
        self._guard = threading.Lock()
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, digest: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{digest_hex(digest)}.{self.fingerprint}.cwasm"

    def get(self, digest: str, wasm: bytes) -> wasmtime.Module:
        """The compiled module; raises ModuleError when ``wasm`` does not hash to ``digest``
        or does not compile."""
        expected = digest_hex(digest)
        if hashlib.sha256(wasm).hexdigest() != expected:
            raise ModuleError(f"the module's sha256 does not match its digest {digest}")
        module = self._recall(digest)
        if module is not None:
            self._count("memory_hits")
            return module
        with self._lock_for(digest):
            module = self._recall(digest)
            if module is not None:
                self._count("memory_hits")
                return module
            module = self._load(digest)
            if module is None:
                module = self._compile(wasm)
                self._count("compiles")
                self._store(digest, module)
            self._keep(digest, module)
            return module

    def cached(self, digest: str) -> wasmtime.Module | None:
        """The module if it is in memory or on disk, without its bytes (None otherwise)."""
        digest_hex(digest)
        module = self._recall(digest)
        if module is not None:
            self._count("memory_hits")
            return module
        with self._lock_for(digest):
            module = self._recall(digest) or self._load(digest)
            if module is not None:
                self._keep(digest, module)
            return module

    def _recall(self, digest: str) -> wasmtime.Module | None:
        with self._guard:
            module = self._modules.get(digest)
            if module is not None:
                self._modules.move_to_end(digest)
            return module

    def _keep(self, digest: str, module: wasmtime.Module) -> None:
        with self._guard:
            self._modules[digest] = module
            self._modules.move_to_end(digest)
            while len(self._modules) > self.in_memory:
                self._modules.popitem(last=False)

    def in_memory_count(self) -> int:
        with self._guard:
            return len(self._modules)

    def _compile(self, wasm: bytes) -> wasmtime.Module:
        """The seam tests count: the only place a module is compiled. Binary modules only
        (wasmtime-py would take any other bytes for WAT text)."""
        if not wasm.startswith(WASM_MAGIC):
            raise ModuleError("not a WebAssembly binary module (no \\0asm header)")
        try:
            return wasmtime.Module(self.engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise ModuleError(f"not a valid WebAssembly module: {_first_line(exc)}") from None

    def _load(self, digest: str) -> wasmtime.Module | None:
        path = self.path_for(digest)
        if path is None:
            return None
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read cached module %s: %s", path, exc)
            return None
        payload = self._payload(blob)
        if payload is None:
            log.warning("ignoring cached module %s: another engine, or corrupt", path)
            self._count("disk_rejects")
            return None
        try:
            module = wasmtime.Module.deserialize(self.engine, payload)
        except wasmtime.WasmtimeError as exc:
            log.warning("ignoring cached module %s: %s", path, _first_line(exc))
            self._count("disk_rejects")
            return None
        self._count("disk_hits")
        return module

    def _payload(self, blob: bytes) -> bytes | None:
        """The serialized module if the header names this engine and the checksum holds."""
        header = MAGIC + self.fingerprint.encode() + b"\n"
        if not blob.startswith(header) or len(blob) < len(header) + 32:
            return None
        checksum = blob[len(header) : len(header) + 32]
        payload = blob[len(header) + 32 :]
        return payload if hashlib.sha256(payload).digest() == checksum else None

    def _store(self, digest: str, module: wasmtime.Module) -> None:
        path = self.path_for(digest)
        if path is None:
            return
        try:
            payload = bytes(module.serialize())
            header = MAGIC + self.fingerprint.encode() + b"\n"
            blob = header + hashlib.sha256(payload).digest() + payload
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".cwasm")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(blob)
                os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except (OSError, wasmtime.WasmtimeError) as exc:
            log.warning("cannot write cached module %s: %s", path, exc)
            return
        self._count("disk_writes")

    def _lock_for(self, digest: str) -> threading.Lock:
        return self._locks[hash(digest) % LOCK_STRIPES]

    def _count(self, field: str) -> None:
        with self._guard:
            setattr(self.stats, field, getattr(self.stats, field) + 1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
