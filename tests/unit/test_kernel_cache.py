"""Kernel.module: compiled once per digest, cached in memory and in cache_dir (keyed by digest
and engine fingerprint), files for another engine or corrupt ones recompiled and rewritten."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import wasmtime

from kernel import Kernel, ModuleError, digest_of
from kernel.module_cache import MAGIC, ModuleCache
from kernel.shipped import example_wasm
from tests.unit.kernel_support import run

WASM = example_wasm("echo")
DIGEST = digest_of(WASM)


@pytest.fixture
def kernels() -> Iterator[list[Kernel]]:
    """Kernels made in a test, closed after it."""
    made: list[Kernel] = []
    yield made
    for k in made:
        k.close()


def new_kernel(kernels: list[Kernel], cache_dir: Path | None = None) -> Kernel:
    k = Kernel(cache_dir=cache_dir)
    kernels.append(k)
    return k


def cache_file(k: Kernel) -> Path:
    path = k.cache.path_for(DIGEST)
    assert path is not None
    return path


def header(fingerprint: str) -> bytes:
    return MAGIC + fingerprint.encode() + b"\n"


def test_same_digest_gives_the_same_module_object(kernels: list[Kernel]) -> None:
    k = new_kernel(kernels)
    first = k.module(DIGEST, WASM)
    assert k.module(DIGEST, WASM) is first
    assert (k.cache_stats.compiles, k.cache_stats.memory_hits) == (1, 1)


def test_a_digest_mismatch_raises_value_error(kernels: list[Kernel]) -> None:
    k = new_kernel(kernels)
    other = digest_of(example_wasm("json_wrap"))
    with pytest.raises(ValueError, match="does not match"):
        k.module(other, WASM)
    with pytest.raises(ValueError, match="sha256"):
        k.module("md5:abc", WASM)
    assert k.cache_stats.compiles == 0


def test_bytes_that_are_not_wasm_raise_module_error(kernels: list[Kernel]) -> None:
    k = new_kernel(kernels)
    junk = b"\x00asm\x01\x00\x00\x00garbage"
    with pytest.raises(ModuleError, match="not a valid WebAssembly module"):
        k.module(digest_of(junk), junk)
    assert issubclass(ModuleError, ValueError)


def test_concurrent_requests_compile_once(kernels: list[Kernel]) -> None:
    k = new_kernel(kernels)
    with ThreadPoolExecutor(max_workers=8) as pool:
        modules = list(pool.map(lambda _: k.module(DIGEST, WASM), range(32)))
    assert all(m is modules[0] for m in modules)
    assert k.cache_stats.compiles == 1


def test_a_new_kernel_reuses_the_disk_cache(kernels: list[Kernel], tmp_path: Path) -> None:
    first = new_kernel(kernels, tmp_path)
    first.module(DIGEST, WASM)
    assert (first.cache_stats.compiles, first.cache_stats.disk_writes) == (1, 1)
    path = cache_file(first)
    assert path.exists() and DIGEST.removeprefix("sha256:") in path.name
    assert first.cache.fingerprint in path.name

    second = new_kernel(kernels, tmp_path)
    module = second.module(DIGEST, WASM)
    assert second.cache_stats.compiles == 0  # the seam every compile goes through
    assert second.cache_stats.disk_hits == 1
    result = run(second, module, b'{"from": "disk"}')
    assert result.ok and result.output == b'{"from": "disk"}'


def test_cached_module_needs_no_bytes(kernels: list[Kernel], tmp_path: Path) -> None:
    first = new_kernel(kernels, tmp_path)
    assert first.cached_module(DIGEST) is None
    module = first.module(DIGEST, WASM)
    assert first.cached_module(DIGEST) is module
    second = new_kernel(kernels, tmp_path)
    loaded = second.cached_module(DIGEST)
    assert loaded is not None and second.cache_stats.disk_hits == 1
    assert second.module(DIGEST, WASM) is loaded
    assert second.cache_stats.compiles == 0


def test_a_file_from_another_engine_version_is_ignored_and_rewritten(
    kernels: list[Kernel], tmp_path: Path
) -> None:
    """A file at the right name whose header names another fingerprint (another wasmtime or
    engine config) is never deserialized."""
    k = new_kernel(kernels, tmp_path)
    path = cache_file(k)
    payload = bytes(wasmtime.Module(k.engine, WASM).serialize())
    path.write_bytes(header("0" * 16) + hashlib.sha256(payload).digest() + payload)
    k.module(DIGEST, WASM)
    assert (k.cache_stats.disk_rejects, k.cache_stats.compiles) == (1, 1)
    assert path.read_bytes().startswith(header(k.cache.fingerprint))
    third = new_kernel(kernels, tmp_path)
    third.module(DIGEST, WASM)
    assert (third.cache_stats.disk_hits, third.cache_stats.compiles) == (1, 0)


def test_an_artifact_of_another_engine_config_is_refused_by_wasmtime(
    kernels: list[Kernel], tmp_path: Path
) -> None:
    """Even with our header and a valid checksum, wasmtime refuses code compiled for another
    configuration (here: without fuel); the kernel recompiles."""
    k = new_kernel(kernels, tmp_path)
    payload = bytes(wasmtime.Module(wasmtime.Engine(), WASM).serialize())
    cache_file(k).write_bytes(
        header(k.cache.fingerprint) + hashlib.sha256(payload).digest() + payload
    )
    module = k.module(DIGEST, WASM)
    assert (k.cache_stats.disk_rejects, k.cache_stats.compiles) == (1, 1)
    assert run(k, module, b"[]").output == b"[]"


def test_a_corrupt_file_is_recompiled_and_rewritten(kernels: list[Kernel], tmp_path: Path) -> None:
    new_kernel(kernels, tmp_path).module(DIGEST, WASM)
    k = new_kernel(kernels, tmp_path)
    path = cache_file(k)
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0xFF
    path.write_bytes(bytes(blob))
    module = k.module(DIGEST, WASM)
    assert (k.cache_stats.disk_rejects, k.cache_stats.compiles) == (1, 1)
    assert run(k, module, b"1").output == b"1"
    third = new_kernel(kernels, tmp_path)
    third.module(DIGEST, WASM)
    assert (third.cache_stats.disk_hits, third.cache_stats.compiles) == (1, 0)


def test_a_truncated_file_is_ignored(kernels: list[Kernel], tmp_path: Path) -> None:
    k = new_kernel(kernels, tmp_path)
    cache_file(k).write_bytes(MAGIC)
    k.module(DIGEST, WASM)
    assert (k.cache_stats.disk_rejects, k.cache_stats.compiles) == (1, 1)


def test_imports_lists_module_and_name_and_warms_the_cache(kernels: list[Kernel]) -> None:
    k = new_kernel(kernels)
    ask = example_wasm("ask_model")
    assert k.imports(ask) == [("aion", "infer"), ("aion", "log")]
    assert k.imports(example_wasm("wasi_echo")) == [
        ("wasi_snapshot_preview1", "fd_read"),
        ("wasi_snapshot_preview1", "fd_write"),
        ("wasi_snapshot_preview1", "proc_exit"),
    ]
    assert k.cached_module(digest_of(ask)) is not None
    with pytest.raises(ModuleError):
        k.imports(b"not wasm")


def test_wat_text_is_not_taken_for_a_module(kernels: list[Kernel]) -> None:
    k = new_kernel(kernels)
    text = b'(module (func (export "run")))'
    with pytest.raises(ModuleError, match="binary"):
        k.module(digest_of(text), text)


def distinct_modules(count: int) -> list[bytes]:
    """``count`` valid modules with distinct digests (each exports its own constant)."""
    return [
        bytes(wasmtime.wat2wasm(f'(module (func (export "n") (result i32) i32.const {n}))'))
        for n in range(count)
    ]


def test_memory_keeps_the_most_recently_used_modules_only(tmp_path: Path) -> None:
    """Issue 17, finding 14: the compiled modules in memory were never let go."""
    cache = ModuleCache(wasmtime.Engine(), tmp_path, in_memory=4)
    modules = distinct_modules(10)
    for wasm in modules:
        cache.get(digest_of(wasm), wasm)
    assert cache.in_memory_count() == 4
    cache.get(digest_of(modules[6]), modules[6])  # recently used: stays
    cache.get(digest_of(modules[0]), modules[0])  # gone from memory: loaded from disk again
    assert cache.in_memory_count() == 4
    assert cache.stats.compiles == 10  # the disk cache kept every one
    assert cache.cached(digest_of(modules[6])) is not None
