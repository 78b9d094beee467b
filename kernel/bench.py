"""Runs/s of ``Kernel.run`` on the echo agent against a bare wasmtime loop (Store, instantiate,
alloc, write, call, read) on the same module in the same process: the price of the kernel's
quotas, checks and result building. Prints, asserts nothing.

    python -m kernel.bench [--seconds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

from kernel.abi import unpack
from kernel.mini_model import MiniHost
from kernel.module_cache import digest_of
from kernel.runs import Limits
from kernel.runtime import Kernel
from kernel.shipped import example_wasm

INPUT = json.dumps({"text": "the quick brown fox jumps over the lazy dog"}).encode()
LIMITS = Limits(fuel=10_000_000, memory_mb=16, timeout_ms=1000)


def rate(step: Callable[[], object], seconds: float, threads: int = 1) -> float:
    """Calls per second of ``step`` over ``seconds`` (after a short warm-up), summed over
    ``threads`` threads calling it concurrently."""
    for _ in range(50):
        step()
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def loop(slot: int) -> None:
        n = 0
        while time.monotonic() < stop:
            step()
            n += 1
        counts[slot] = n

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.monotonic() - started)


def bare_step(engine: wasmtime.Engine, module: wasmtime.Module) -> Callable[[], bytes]:
    """The least a host must do per call, with the same engine (fuel and epochs on)."""
    linker = wasmtime.Linker(engine)

    def step() -> bytes:
        store = wasmtime.Store(engine)
        store.set_fuel(LIMITS.fuel)
        store.set_epoch_deadline(100)
        exports = linker.instantiate(store, module).exports(store)
        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        ptr = exports["alloc"](store, len(INPUT))  # type: ignore[operator]
        memory.write(store, INPUT, ptr)
        out_ptr, out_len = unpack(exports["run"](store, ptr, len(INPUT)))  # type: ignore[operator]
        return bytes(memory.read(store, out_ptr, out_ptr + out_len))

    return step


def compile_vs_cache() -> tuple[float, float]:
    """Milliseconds to get text_stats from a cold compile and from the on-disk cache."""
    wasm = example_wasm("text_stats")
    with tempfile.TemporaryDirectory() as tmp:
        first = Kernel(cache_dir=Path(tmp))
        started = time.perf_counter()
        first.module(digest_of(wasm), wasm)
        compiled = time.perf_counter() - started
        first.close()
        second = Kernel(cache_dir=Path(tmp))
        started = time.perf_counter()
        second.module(digest_of(wasm), wasm)
        loaded = time.perf_counter() - started
        assert second.cache_stats.disk_hits == 1
        second.close()
    return compiled * 1000, loaded * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    kernel = Kernel()
    wasm = example_wasm("echo")
    module = kernel.module(digest_of(wasm), wasm)
    host = MiniHost()
    assert kernel.run(module, "reactor", "run", INPUT, LIMITS, frozenset(), host).output == INPUT

    def kernel_step() -> object:
        return kernel.run(module, "reactor", "run", INPUT, LIMITS, frozenset(), host)

    bare = bare_step(kernel.engine, module)
    assert bare() == INPUT
    kernel_rate = rate(kernel_step, args.seconds, args.threads)
    bare_rate = rate(bare, args.seconds, args.threads)
    compiled_ms, cached_ms = compile_vs_cache()
    kernel.close()

    print(f"threads:            {args.threads}")
    print(f"Kernel.run (echo):  {kernel_rate:10.0f} runs/s  ({1e6 / kernel_rate:7.1f} µs/run)")
    print(f"bare wasmtime:      {bare_rate:10.0f} runs/s  ({1e6 / bare_rate:7.1f} µs/run)")
    print(f"ratio kernel/bare:  {kernel_rate / bare_rate:10.2f}")
    print(f"text_stats compile: {compiled_ms:10.2f} ms; from the disk cache: {cached_ms:.3f} ms")


if __name__ == "__main__":
    main()
