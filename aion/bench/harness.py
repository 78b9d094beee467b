"""What every benchmark scenario reports: figures of repeated trials, ours beside a baseline.

A figure is the median of its trials with their spread (min-max); when it has a baseline run in
the same process and the same minute, the ratio of the medians. Targets are checked and shown,
never asserted: benchmarks inform, tests do not time.
"""

from __future__ import annotations

import json
import platform
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil


@dataclass
class Figure:
    scenario: str
    name: str
    unit: str
    ours: list[float]
    baseline: list[float] = field(default_factory=list)
    baseline_name: str = ""
    higher_is_better: bool = True
    target: str = ""  # what the issue asks, in words
    check: Callable[[Figure], bool] | None = field(default=None, repr=False)
    note: str = ""
    # Computed from other measured figures (a difference of medians, say): it may be negative
    # or zero when its parts are noisy, so checks ask only that it is finite.
    derived: bool = False

    @property
    def median(self) -> float:
        return statistics.median(self.ours) if self.ours else float("nan")

    @property
    def baseline_median(self) -> float | None:
        return statistics.median(self.baseline) if self.baseline else None

    @property
    def ratio(self) -> float | None:
        base = self.baseline_median
        if not base:
            return None
        return self.median / base

    @property
    def spread(self) -> tuple[float, float]:
        return (min(self.ours), max(self.ours)) if self.ours else (float("nan"), float("nan"))

    @property
    def met(self) -> bool | None:
        return None if self.check is None or not self.ours else bool(self.check(self))

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        found.pop("check")
        found.update(
            median=self.median,
            spread=list(self.spread),
            baseline_median=self.baseline_median,
            ratio=self.ratio,
            met=self.met,
        )
        return found


def machine() -> dict[str, Any]:
    """The machine the figures were measured on."""
    return {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def write_json(figures: list[Figure], path: Path, extra: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": machine(), **extra, "figures": [f.as_json() for f in figures]}
    path.write_text(json.dumps(document, indent=2) + "\n")
