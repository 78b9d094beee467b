"""The WASM kernel: Aion's data plane (wasmtime, quotas, the agent ABI).

It knows nothing of Kafka: only modules, inputs, quotas and a Host to call back. The ABI for
agent authors is docs/agent-abi.md; the kernel worker drives ``Kernel.run``.
"""

from kernel.abi import import_problem
from kernel.module_cache import CacheStats, ModuleError, digest_of
from kernel.runs import REASONS, Host, Limits, RunResult
from kernel.runtime import Kernel

__all__ = [
    "REASONS",
    "CacheStats",
    "Host",
    "Kernel",
    "Limits",
    "ModuleError",
    "RunResult",
    "digest_of",
    "import_problem",
]
