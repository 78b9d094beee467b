"""Scenario 8, tasks end to end: a WASI echo agent's tasks from submit to ``succeeded`` in the
read model, beside the Temporal dev server running the same module as one activity per task,
and beside the kernel's own rate for that module (scenario 5's figure, same run).

One tenant, limits raised (1,000 concurrent tasks, 1,000,000 a minute). Closed batches: all
tasks in ``POST .../tasks/batch`` at once, the rate from the first submit to the last task seen
succeeded, and each task's submit -> succeeded percentiles. Open loop: ``POST .../tasks`` at a
fixed rate whatever the system does, the percentiles (issue 16: p99 <= 250 ms at 100/s).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aion.bench import decisions
from aion.bench.harness import Figure
from aion.bench.ingest import bench_tenant
from aion.bench.system import System
from aion.bench.task_load import Trial, closed_batch, deploy_echo, open_loop
from aion.settings import Settings

try:  # the optional peer extra (make peer-temporal); scenario 8 says when it is missing
    from aion.bench import temporal_peer
except ImportError:
    temporal_peer = None  # type: ignore[assignment]

SCENARIO = "8 tasks end to end"
MISSING = "Temporal peer not installed: run make peer-temporal"


@dataclass(frozen=True)
class TaskPlan:
    sizes: tuple[int, ...]  # closed batches, in tasks
    trials: tuple[int, ...]  # per size: fewer of the large ones (minutes each today)
    open_rate: float  # tasks/s
    open_s: float
    wait_s: float  # the longest a trial waits for its tasks

    @classmethod
    def of(cls, quick: bool) -> TaskPlan:
        if quick:
            return cls((30,), (1,), 100, 0.5, 45)
        return cls((100, 1000), (3, 2), 100, 5, 600)


def temporal_binary(settings: Settings) -> Path | None:
    """The CLI that make peer-temporal builds into the stack's cache (or one on PATH)."""
    built = settings.cache_dir / "go" / "bin" / "temporal"
    if built.is_file():
        return built
    found = shutil.which("temporal")
    return Path(found) if found else None


def peer_missing(settings: Settings) -> str | None:
    if temporal_peer is None or temporal_binary(settings) is None:
        return MISSING
    return None


def _figures(
    name: str, ours: list[Trial], base: list[tuple[float, list[float]]], with_base: bool
) -> list[Figure]:
    """tasks/s and p50/p90/p99 of closed-batch trials, Temporal's beside them."""
    base_rates = [_peer_rate(submitted, done) for submitted, done in base]
    base_pcts = [_peer_percentiles(submitted, done) for submitted, done in base]
    label = "Temporal dev server" if with_base else ""
    notes = "; ".join(n for n in (t.note() for t in ours) if n)
    figures = [
        Figure(
            SCENARIO,
            f"tasks/s, {name}",
            "/s",
            [t.rate() for t in ours],
            base_rates,
            label,
            target=">= 200/s and >= 10x Temporal",
            check=lambda f: f.median >= 200 and (f.ratio is None or f.ratio >= 10),
            note=notes,
        )
    ]
    for i, share in enumerate(("p50", "p90", "p99")):
        figures.append(
            Figure(
                SCENARIO,
                f"{share} submit->succeeded, {name}",
                "ms",
                [t.percentiles()[i] for t in ours],
                [p[i] for p in base_pcts],
                label,
                higher_is_better=False,
            )
        )
    return figures


def _peer_rate(submitted: float, done: list[float]) -> float:
    return len(done) / (max(done) - submitted)


def _peer_percentiles(submitted: float, done: list[float]) -> tuple[float, float, float]:
    trial = Trial({str(i): submitted for i in range(len(done))})
    trial.seen = {str(i): (at, "succeeded") for i, at in enumerate(done)}
    return trial.percentiles()


def _kernel_beside(figures: list[Figure], ours: list[float], trials: int) -> Figure:
    """Aion's tasks/s beside ``Kernel.run`` of the same module alone: scenario 5's figure
    when it ran in this run, else measured here by the same code."""
    kernel = next(
        (f for f in figures if f.scenario == "5 kernel" and f.name == decisions.WASI_NAME),
        None,
    )
    runs = kernel.ours if kernel else decisions.wasi_runs(trials, 1.0)
    return Figure(
        SCENARIO,
        "tasks/s beside Kernel.run alone",
        "/s",
        ours,
        runs,
        "Kernel.run of wasi_echo (scenario 5)",
        note="Aion's rate is the largest batch's; the ratio is the sandbox's share of a task",
    )


def tasks(system: System, quick: bool, figures: list[Figure], logs: Path) -> list[Figure]:
    plan = TaskPlan.of(quick)
    tenant = bench_tenant(system)
    deploy_echo(system, tenant)
    missing = peer_missing(system.settings)
    peer = None
    binary = temporal_binary(system.settings)
    if missing is None and temporal_peer is not None and binary is not None:
        try:
            peer = temporal_peer.TemporalPeer.start(binary, logs)
        except RuntimeError as exc:  # Aion's side is still measured; the note says why not
            missing = str(exc)
    found: list[Figure] = []
    try:
        largest: list[Trial] = []
        for size, trials in zip(plan.sizes, plan.trials, strict=True):
            ours: list[Trial] = []
            base: list[tuple[float, list[float]]] = []
            for _ in range(trials):
                run = uuid.uuid4().hex[:8]
                ids = [f"t{run}-{i}" for i in range(size)]
                ours.append(closed_batch(system, tenant, ids, wait_s=plan.wait_s))
                if peer is not None:
                    base.append(peer.batch(size, f"t{run}"))
            found += _figures(f"batch of {size:,}", ours, base, peer is not None)
            largest = ours
        if missing:
            found[0].note = f"{missing}; {found[0].note}".rstrip("; ")
        found.append(_kernel_beside(figures, [t.rate() for t in largest], max(plan.trials)))
        found += _open_figures(system, tenant, plan)
    finally:
        if peer is not None:
            peer.stop()
    return found


def _open_figures(system: System, tenant: str, plan: TaskPlan) -> list[Figure]:
    trials = [
        open_loop(
            system, tenant, f"o{uuid.uuid4().hex[:8]}", plan.open_rate, plan.open_s, plan.wait_s
        )
        for _ in range(plan.trials[-1])
    ]
    name = f"open loop at {plan.open_rate:g}/s"
    notes = "; ".join(n for n in (t.note() for t in trials) if n)
    check: dict[str, Callable[[Figure], bool]] = {"p99": lambda f: f.median <= 250}
    figures = []
    for i, share in enumerate(("p50", "p90", "p99")):
        figures.append(
            Figure(
                SCENARIO,
                f"{share} submit->succeeded, {name}",
                "ms",
                [t.percentiles()[i] for t in trials],
                higher_is_better=False,
                target="<= 250 ms" if share == "p99" else "",
                check=check.get(share),
                note=notes if share == "p99" else "",
            )
        )
    return figures
