"""The agent ABI as data: which imports each ABI and capability grants, and how values pack.

Pure (no wasmtime): the deploy path calls ``import_problem`` to refuse a module before it runs.
"""

from __future__ import annotations

REACTOR = "reactor"
WASI_COMMAND = "wasi_command"
ABIS = (REACTOR, WASI_COMMAND)

SCRATCH_DIR = "scratch_dir"
MODEL_INFERENCE = "model_inference"
PROGRESS = "progress"

HOST_MODULE = "aion"
WASI_MODULE = "wasi_snapshot_preview1"
SCRATCH_GUEST_PATH = "/scratch"

# aion.<name> -> the capability it needs (None: always granted).
HOST_FUNCTIONS: dict[str, str | None] = {
    "log": None,
    "progress": PROGRESS,
    "infer": MODEL_INFERENCE,
}

# Every function of WASI preview 1 (wasi_snapshot_preview1): granted to wasi_command modules.
# Filesystem and socket calls find nothing to act on unless a capability preopens something.
WASI_FUNCTIONS = frozenset(
    {
        "args_get",
        "args_sizes_get",
        "environ_get",
        "environ_sizes_get",
        "clock_res_get",
        "clock_time_get",
        "fd_advise",
        "fd_allocate",
        "fd_close",
        "fd_datasync",
        "fd_fdstat_get",
        "fd_fdstat_set_flags",
        "fd_fdstat_set_rights",
        "fd_filestat_get",
        "fd_filestat_set_size",
        "fd_filestat_set_times",
        "fd_pread",
        "fd_prestat_get",
        "fd_prestat_dir_name",
        "fd_pwrite",
        "fd_read",
        "fd_readdir",
        "fd_renumber",
        "fd_seek",
        "fd_sync",
        "fd_tell",
        "fd_write",
        "path_create_directory",
        "path_filestat_get",
        "path_filestat_set_times",
        "path_link",
        "path_open",
        "path_readlink",
        "path_remove_directory",
        "path_rename",
        "path_symlink",
        "path_unlink_file",
        "poll_oneoff",
        "proc_exit",
        "proc_raise",
        "sched_yield",
        "random_get",
        "sock_accept",
        "sock_recv",
        "sock_send",
        "sock_shutdown",
    }
)

# Reactor exports: the kernel writes the input through ``alloc`` into ``memory``.
MEMORY_EXPORT = "memory"
ALLOC_EXPORT = "alloc"
WASI_ENTRYPOINT = "_start"
MANIFEST_DEFAULT_ENTRYPOINT = "run"  # commands.agent's default, also for wasi_command manifests


def import_problem(
    imports: list[tuple[str, str]], abi: str, capabilities: frozenset[str]
) -> str | None:
    """Why these imports are not allowed for ``abi`` and ``capabilities`` (the first offending
    import named), or None; the same rule at deploy time and at run time."""
    if abi not in ABIS:
        return f"abi {abi!r} is not one of {', '.join(ABIS)}"
    for module, name in imports:
        where = f"import {module}.{name}"
        if module == HOST_MODULE:
            if name not in HOST_FUNCTIONS:
                return f"{where} is not an aion host function ({', '.join(HOST_FUNCTIONS)})"
            needed = HOST_FUNCTIONS[name]
            if needed is not None and needed not in capabilities:
                return f"{where} needs the capability {needed}, which is not granted"
        elif module == WASI_MODULE:
            if abi != WASI_COMMAND:
                return f"{where}: WASI is only granted to the {WASI_COMMAND} abi, not {abi}"
            if name not in WASI_FUNCTIONS:
                return f"{where} is not a WASI preview 1 function"
        else:
            return f"{where} is not granted (only {HOST_MODULE} and, for {WASI_COMMAND}, WASI)"
    return None


def pack(ptr: int, length: int) -> int:
    """``(ptr << 32) | len`` as the signed i64 wasm sees."""
    value = ((ptr & 0xFFFFFFFF) << 32) | (length & 0xFFFFFFFF)
    return value - (1 << 64) if value >= 1 << 63 else value


def unpack(value: int) -> tuple[int, int]:
    """(ptr, len) from an i64 returned by the guest (read as unsigned)."""
    value &= 0xFFFFFFFFFFFFFFFF
    return value >> 32, value & 0xFFFFFFFF


def unsigned(value: int) -> int:
    """An i32 from wasm (signed in Python) as the u32 address it stands for."""
    return value & 0xFFFFFFFF
