"""The one wasmtime Engine of a Kernel and the thread that moves its epoch (the run timeouts)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import threading

import wasmtime

# Deep recursion must trap cleanly (STACK_OVERFLOW) long before the host thread's stack runs out.
MAX_WASM_STACK = 512 << 10
CACHE_FORMAT = 1  # bump when the on-disk layout of a cached module changes


def engine_config() -> dict[str, object]:
    """Every setting that changes compiled code: it also keys the on-disk module cache."""
    return {
        "consume_fuel": True,
        "epoch_interruption": True,
        "max_wasm_stack": MAX_WASM_STACK,
    }


def make_engine() -> wasmtime.Engine:
    settings = engine_config()
    config = wasmtime.Config()
    config.consume_fuel = bool(settings["consume_fuel"])
    config.epoch_interruption = bool(settings["epoch_interruption"])
    config.max_wasm_stack = MAX_WASM_STACK
    return wasmtime.Engine(config)


def engine_fingerprint() -> str:
    """Short hash of the wasmtime version, the engine settings and the machine: a cached
    compiled module is only trusted by a Kernel with the same fingerprint."""
    parts = [
        f"format={CACHE_FORMAT}",
        f"wasmtime={importlib.metadata.version('wasmtime')}",
        f"machine={platform.machine()}",
        f"system={platform.system()}",
        *(f"{key}={value}" for key, value in sorted(engine_config().items())),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class EpochTicker:
    """A daemon thread calling ``engine.increment_epoch()`` every ``tick_ms``; a run's deadline
    is a number of these ticks."""

    def __init__(self, engine: wasmtime.Engine, tick_ms: int) -> None:
        if tick_ms <= 0:
            raise ValueError("epoch_tick_ms must be positive")
        self.tick_ms = tick_ms
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="aion-kernel-epoch", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        interval = self.tick_ms / 1000
        while not self._stop.wait(interval):
            self._engine.increment_epoch()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
