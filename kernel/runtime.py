"""The Kernel: one wasmtime Engine, its epoch ticker, the module cache and the two linkers; the
entry point the kernel worker calls."""

from __future__ import annotations

import threading
from pathlib import Path

import wasmtime

from kernel.abi import REACTOR, WASI_COMMAND
from kernel.engine import EpochTicker, make_engine
from kernel.host import define_host, define_wasi
from kernel.module_cache import CacheStats, ModuleCache, digest_of
from kernel.runs import REFUSED, Host, Limits, RunResult
from kernel.sandbox import Sandbox, epoch_ticks


class Kernel:
    """Runs agent modules under quotas. Thread-safe: each run has its own Store, used only on
    the calling thread; modules and linkers are shared."""

    def __init__(self, cache_dir: Path | None = None, epoch_tick_ms: int = 10) -> None:
        self.engine = make_engine()
        self.epoch_tick_ms = epoch_tick_ms
        self.cache = ModuleCache(self.engine, cache_dir)
        self._linkers: dict[str, wasmtime.Linker] = {}
        for abi in (REACTOR, WASI_COMMAND):
            linker = wasmtime.Linker(self.engine)
            if abi == WASI_COMMAND:
                define_wasi(linker)
            define_host(linker)
            self._linkers[abi] = linker
        self._closed = threading.Event()
        self._ticker = EpochTicker(self.engine, epoch_tick_ms)

    def module(self, digest: str, wasm: bytes) -> wasmtime.Module:
        """The compiled module for ``digest`` ("sha256:<hex>"), compiled at most once per
        digest; raises ModuleError (a ValueError) if ``wasm`` does not hash to ``digest`` or is
        not a valid module."""
        return self.cache.get(digest, wasm)

    def cached_module(self, digest: str) -> wasmtime.Module | None:
        """The module if already compiled (memory or cache_dir): spares fetching its bytes."""
        return self.cache.cached(digest)

    @property
    def cache_stats(self) -> CacheStats:
        return self.cache.stats

    def imports(self, wasm: bytes) -> list[tuple[str, str]]:
        """(module, name) of each import; compiles through the cache, so a deploy also warms
        it. Raises ModuleError for bytes that are not a valid module."""
        module = self.cache.get(digest_of(wasm), wasm)
        return [(item.module, item.name or "") for item in module.imports]

    def run(
        self,
        module: wasmtime.Module,
        abi: str,
        entrypoint: str,
        input: bytes,
        limits: Limits,
        capabilities: frozenset[str],
        host: Host,
        models: frozenset[str] = frozenset(),
        scratch_dir: Path | None = None,
    ) -> RunResult:
        """Runs ``module`` once on ``input``; never raises for anything the module does."""
        sandbox = Sandbox(
            self.engine,
            self._linkers.get(abi) or self._linkers[REACTOR],
            limits,
            host,
            capabilities,
            models,
            epoch_ticks(limits.timeout_ms, self.epoch_tick_ms),
        )
        if self._closed.is_set():
            return sandbox.failed(REFUSED, "the kernel is closed")
        return sandbox.run(module, abi, entrypoint, input, scratch_dir)

    def close(self) -> None:
        """Stops the epoch ticker; later runs are refused (their timeouts could not fire)."""
        self._closed.set()
        self._ticker.stop()

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
