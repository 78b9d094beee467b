"""The PNG of a bench run: one panel per kind of figure, each value labelled.

Figures of different units and magnitudes (a 250x remembered verdict beside a 0.5x ingest
ratio, 40 us beside 40 s) cannot share one linear axis, so throughputs, latencies and memory
get their own panels, and the ratios to the baselines a log axis centred on 1.0.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as Canvas

from aion.bench.harness import Figure, fmt

OURS = "#2f6fde"
BASE = "#9aa5b1"
TO_MS = {"ms": 1.0, "us": 1e-3, "s": 1e3}


@dataclass(frozen=True)
class Bar:
    label: str
    ours: float
    text: str
    base: float | None = None
    base_text: str = ""


def _label(f: Figure) -> str:
    return textwrap.fill(f"{f.scenario}: {f.name}", 40)


def _times(value: float) -> str:
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def throughputs(figures: list[Figure]) -> list[Bar]:
    return [
        Bar(
            _label(f),
            f.median,
            fmt(f.median, f.unit),
            f.baseline_median,
            f"{fmt(f.baseline_median, f.unit)} {f.baseline_name}" if f.baseline else "",
        )
        for f in figures
        if f.unit == "/s" and not f.derived
    ]


def latencies(figures: list[Figure]) -> list[Bar]:
    """Every time figure in milliseconds (one log axis), labelled in its own unit."""
    bars = []
    for f in figures:
        scale = TO_MS.get(f.unit)
        if scale is None:
            continue
        base = f.baseline_median
        bars.append(
            Bar(
                _label(f),
                f.median * scale,
                fmt(f.median, f.unit),
                base * scale if base is not None else None,
                f"{fmt(base, f.unit)} {f.baseline_name}" if base is not None else "",
            )
        )
    return bars


def memory(figures: list[Figure]) -> list[Bar]:
    return [Bar(_label(f), f.median, fmt(f.median, f.unit)) for f in figures if f.unit == "MiB"]


def ratios(figures: list[Figure]) -> list[Bar]:
    """How many times better than its baseline Aion is (below 1.0: worse): the ratio of the
    medians for a rate, its inverse for a latency or a size."""
    found = []
    for f in figures:
        if f.ratio is None or f.ratio <= 0 or f.derived:
            continue
        better = f.ratio if f.higher_is_better else 1 / f.ratio
        found.append(Bar(f"{_label(f)}\n(vs {f.baseline_name})", better, _times(better)))
    return found


def _bars(ax: Axes, bars: list[Bar], title: str, log: bool, xlabel: str) -> None:
    """Horizontal bars (ours, and the baseline's beneath when there is one), each labelled
    with its absolute value; values that a log axis cannot show are labelled only."""
    ys = range(len(bars))
    positive = [v for b in bars for v in (b.ours, b.base) if v is not None and v > 0]
    floor = min(positive) / 3 if positive else 1.0

    def shown(value: float | None) -> float:
        if value is None or not math.isfinite(value) or (log and value <= 0):
            return floor if log else 0.0
        return value

    left = floor if log else 0.0
    height = 0.38
    for y, bar in zip(ys, bars, strict=True):
        pairs = [(y - height / 2, bar.ours, bar.text, OURS)]
        if bar.base is not None:
            pairs.append((y + height / 2, bar.base, bar.base_text, BASE))
        for at, value, text, colour in pairs:
            ax.barh(at, shown(value) - left, height, left=left, color=colour)
            ax.text(shown(value), at, f" {text}", va="center", fontsize=7)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([b.label for b in bars], fontsize=7)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
        top = max(positive) if positive else 10.0
        ax.set_xlim(floor, top * 30)  # room for the labels right of the longest bar
    else:
        top = max((b.ours for b in bars), default=1.0)
        ax.set_xlim(0, top * 1.35)
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_xlabel(xlabel, fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", linewidth=0.3, alpha=0.5)


def _ratio_bars(ax: Axes, bars: list[Bar]) -> None:
    """Ratios on a log axis from 1.0: right of the line Aion is ahead (blue), left behind."""
    ys = range(len(bars))
    for y, bar in zip(ys, bars, strict=True):
        ahead = bar.ours >= 1.0
        ax.barh(y, bar.ours - 1.0, 0.6, left=1.0, color=OURS if ahead else "#d9822b")
        ax.text(bar.ours, y, f" {bar.text} " if ahead else f"{bar.text} ", va="center",
                ha="left" if ahead else "right", fontsize=7)  # fmt: skip
    ax.axvline(1.0, color="#333", linewidth=0.8)
    ax.set_xscale("log")
    values = [b.ours for b in bars]
    ax.set_xlim(min(0.1, min(values) / 3), max(10.0, max(values) * 3))
    ax.set_yticks(list(ys))
    ax.set_yticklabels([b.label for b in bars], fontsize=7)
    ax.invert_yaxis()
    ax.set_title(
        "Aion against its baseline (median over median; right of 1.0 Aion is better)",
        fontsize=9,
        loc="left",
    )
    ax.set_xlabel("times better (log): rates Aion/baseline, latencies baseline/Aion", fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", linewidth=0.3, alpha=0.5)


def plot(figures: list[Figure], path: Path) -> None:
    """Writes the run's panels to ``path`` (PNG); nothing when no figure has a value."""
    panels = [
        (throughputs(figures), "Throughput (Aion blue, baseline grey)", True, "per second (log)"),
        (latencies(figures), "Latency and time per operation", True, "milliseconds (log)"),
        (memory(figures), "Resident memory per role", False, "MiB"),
    ]
    shown = [p for p in panels if p[0]]
    ratio_bars = ratios(figures)
    rows = [len(p[0]) for p in shown] + ([len(ratio_bars)] if ratio_bars else [])
    if not rows:
        return
    canvas = Canvas(figsize=(11, 1.2 + 0.42 * sum(rows) + 0.7 * len(rows)))
    FigureCanvasAgg(canvas)
    grid = canvas.add_gridspec(len(rows), 1, height_ratios=[r + 1.5 for r in rows])
    for i, (bars, title, log, xlabel) in enumerate(shown):
        _bars(canvas.add_subplot(grid[i]), bars, title, log, xlabel)
    if ratio_bars:
        _ratio_bars(canvas.add_subplot(grid[len(shown)]), ratio_bars)
    canvas.suptitle("Aion beside its baselines (same run; medians of the trials)", fontsize=11)
    canvas.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.savefig(path, dpi=110)
