"""`aion bench`: every scenario, a table, a JSON file and a PNG plot.

Full runs repeat each measurement (5 trials) long enough to settle; `--quick` runs each once or
twice, briefly, to prove the harness works (the test suite runs it; it asserts no timing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aion.bench import decisions, ingest, queue_depth, rebuild, scale_out, tasks
from aion.bench.harness import Figure, fmt, machine, write_json
from aion.bench.plot import plot
from aion.bench.system import System


@dataclass(frozen=True)
class Plan:
    trials: int
    ingest_s: float
    e2e_s: float
    inproc_s: float
    batches: int  # requests of 500 tasks per bulk trial
    quick: bool

    @classmethod
    def of(cls, quick: bool) -> Plan:
        return cls(2, 1, 3, 0.3, 2, True) if quick else cls(5, 8, 10, 2, 20, False)


def memory(system: System) -> list[Figure]:
    """Resident size per role, sampled after the load scenarios (steady state)."""
    samples: dict[str, list[float]] = {}
    for _ in range(3):
        for role, mib in system.rss_mb().items():
            samples.setdefault(role, []).append(mib)
        time.sleep(0.2)
    return [
        Figure("7 memory", f"RSS {role}", "MiB", values, higher_is_better=False)
        for role, values in sorted(samples.items())
    ]


NAMES = (
    "1 HTTP ingest",
    "2 bulk ingest",
    "3 end-to-end latency",
    "4 projection rebuild",
    "5 kernel",  # before 8, which sets its tasks/s beside the kernel's rate
    "6 policy",
    "8 tasks end to end",
    "9 queue depth",
    "10 scale-out",
    "7 memory",  # after the load scenarios: the roles' steady state
)


def scenarios(
    system: System, plan: Plan, figures: list[Figure], queue: int | None = None
) -> list[tuple[str, Callable[[], list[Figure]]]]:
    """Each scenario by name; ``figures`` is the run's list so far (scenario 8 reads 5's)."""
    logs = system.logs or system.settings.stack_dir / "logs" / "bench"
    runs: list[Callable[[], list[Figure]]] = [
        lambda: ingest.ingest(system, plan.trials, plan.ingest_s),
        lambda: ingest.bulk(system, plan.trials, plan.batches),
        lambda: ingest.end_to_end(system, plan.trials, plan.e2e_s),
        lambda: rebuild.rebuild(system, plan.trials, plan.quick),
        lambda: decisions.kernel_runs(plan.trials, plan.inproc_s),
        lambda: decisions.policy_decisions(plan.trials, plan.inproc_s),
        lambda: tasks.tasks(system, plan.quick, figures, logs),
        lambda: queue_depth.queue_depth(system, plan.quick, queue),
        lambda: scale_out.scale_out(system, plan.quick),
        lambda: memory(system),
    ]
    return list(zip(NAMES, runs, strict=True))


def chosen(only: list[str] | None) -> list[str]:
    """The names of the scenarios whose number is in ``only`` (all when None), in their usual
    order; an unknown number is a ValueError naming the known ones."""
    if not only:
        return list(NAMES)
    numbers = {name.split()[0] for name in NAMES}
    unknown = sorted(set(only) - numbers)
    if unknown:
        raise ValueError(
            f"no scenario {', '.join(unknown)}: choose from {', '.join(sorted(numbers, key=int))}"
        )
    return [name for name in NAMES if name.split()[0] in only]


def table(figures: list[Figure]) -> Table:
    grid = Table(title="Aion benchmarks (median of trials; spread min-max)")
    for column in ("scenario", "figure", "Aion", "spread", "baseline", "ratio", "target", "met"):
        grid.add_column(column, overflow="fold")
    for f in figures:
        low, high = f.spread
        grid.add_row(
            f.scenario,
            f.name,
            fmt(f.median, f.unit) + (" (derived)" if f.derived else ""),
            f"{fmt(low)}-{fmt(high)}",
            f"{fmt(f.baseline_median, f.unit)} {f.baseline_name}".strip() if f.baseline else "-",
            fmt(f.ratio) if f.ratio is not None else "-",
            f.target or "-",
            {True: "yes", False: "NO", None: "-"}[f.met],
        )
    return grid


def run(
    system: System,
    quick: bool,
    out: Path,
    console: Console,
    only: list[str] | None = None,
    queue: int | None = None,
) -> list[Figure]:
    plan = Plan.of(quick)
    figures: list[Figure] = []
    started = time.monotonic()
    try:
        wanted = chosen(only)
        for name, scenario in scenarios(system, plan, figures, queue):
            if name not in wanted:
                continue
            console.print(f"[bold]{name}[/bold] …")
            began = time.monotonic()
            found = scenario()
            figures += found
            for f in found:
                if f.note:
                    console.print(f"  {f.name}: {f.note}", highlight=False)
            if not found:
                console.print(f"  {name}: skipped (it needs the bench's own roles, not --api)")
            console.print(f"  {name}: {time.monotonic() - began:.1f} s")
    finally:
        ingest.bench_topic(system.settings, create=False)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    extra = {
        "quick": quick,
        "only": only or None,
        "queue_depth": queue,
        "seconds": round(time.monotonic() - started, 1),
        "at": stamp,
    }
    write_json(figures, out / f"bench-{stamp}.json", extra)
    plot(figures, out / f"bench-{stamp}.png")
    console.print(table(figures))
    where = machine()
    console.print(
        f"{where['cpus']} CPUs, {where['memory_gib']} GiB, Python {where['python']}; "
        f"written to {out}/bench-{stamp}.json and .png"
    )
    return figures
