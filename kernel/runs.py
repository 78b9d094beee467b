"""What a run is given and what it gives back: the types the kernel worker codes against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

OUT_OF_FUEL = "out_of_fuel"
MEMORY_LIMIT = "memory_limit"
TIMEOUT = "timeout"
TRAP = "trap"
INVALID_OUTPUT = "invalid_output"
OUTPUT_TOO_LARGE = "output_too_large"
REFUSED = "refused"
REASONS = (OUT_OF_FUEL, MEMORY_LIMIT, TIMEOUT, TRAP, INVALID_OUTPUT, OUTPUT_TOO_LARGE, REFUSED)


@dataclass(frozen=True)
class Limits:
    """One run's quotas: fuel, memory and timeout come from the agent manifest's quotas."""

    fuel: int
    memory_mb: int
    timeout_ms: int
    max_output_bytes: int = 1 << 20  # 1 MiB
    max_log_bytes: int = 64 << 10  # 64 KiB
    table_elements: int = 10_000
    max_scratch_bytes: int = 64 << 20  # 64 MiB in /scratch (kernel/scratch.py)
    max_scratch_entries: int = 1000  # files, directories and links in /scratch
    max_prompt_bytes: int = 256 << 10  # what one aion.infer may pass as its prompt

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb << 20


class Host(Protocol):
    """What a run may call back into; the worker supplies it (events, the model registry)."""

    def progress(self, percent: float | None, message: str) -> None: ...

    def infer(self, model: str, prompt: str) -> str:
        """The model's answer; raises KeyError for a model the host does not know."""
        ...


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run; ``reason`` is one of ``REASONS`` when not ``ok``."""

    ok: bool
    output: bytes | None
    reason: str | None
    message: str
    fuel_used: int
    duration_ms: int
    logs: bytes
