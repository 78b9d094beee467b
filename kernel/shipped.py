"""The example agents shipped with the kernel (``kernel/examples/*.wat``, package data)."""

from __future__ import annotations

from importlib import resources

import wasmtime

EXAMPLES = ("echo", "text_stats", "json_wrap", "ask_model", "wasi_echo")


def example_wat(name: str) -> str:
    """The WAT source of the example agent ``name`` (one of EXAMPLES)."""
    if name not in EXAMPLES:
        raise KeyError(f"no example agent {name!r}; there are {', '.join(EXAMPLES)}")
    return (resources.files("kernel") / "examples" / f"{name}.wat").read_text(encoding="utf-8")


def example_wasm(name: str) -> bytes:
    """The example compiled from WAT to a binary module (what is uploaded and digested)."""
    return bytes(wasmtime.wat2wasm(example_wat(name)))
