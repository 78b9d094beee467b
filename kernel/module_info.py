"""What a compiled module imports and exports, read once per Module (wasmtime-py builds these
type objects through ctypes, which cost more than a whole echo run when repeated per run)."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import wasmtime

Signature = tuple[tuple[str, ...], tuple[str, ...]]  # (params, results), e.g. (("i32",), ("i32",))


@dataclass(frozen=True)
class ModuleInfo:
    imports: tuple[tuple[str, str], ...]
    functions: dict[str, Signature]  # exported functions by name
    memories: frozenset[str]  # exported memories
    min_memory_pages: int  # the largest declared minimum of an imported or exported memory

    def signature(self, name: str) -> Signature | None:
        return self.functions.get(name)


_infos: weakref.WeakKeyDictionary[wasmtime.Module, ModuleInfo] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def module_info(module: wasmtime.Module) -> ModuleInfo:
    with _lock:
        info = _infos.get(module)
    if info is None:
        info = _read(module)
        with _lock:
            _infos[module] = info
    return info


def _read(module: wasmtime.Module) -> ModuleInfo:
    functions: dict[str, Signature] = {}
    memories: set[str] = set()
    pages = 0
    for export in module.exports:
        ty = export.type
        if isinstance(ty, wasmtime.FuncType):
            functions[export.name] = (
                tuple(str(t) for t in ty.params),
                tuple(str(t) for t in ty.results),
            )
        elif isinstance(ty, wasmtime.MemoryType):
            memories.add(export.name)
            pages = max(pages, ty.limits.min)
    imports = []
    for item in module.imports:
        imports.append((item.module, item.name or ""))
        if isinstance(item.type, wasmtime.MemoryType):
            pages = max(pages, item.type.limits.min)
    return ModuleInfo(tuple(imports), functions, frozenset(memories), pages)
