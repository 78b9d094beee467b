"""`aion bench --quick` against the running test system: the harness works end to end and
writes every scenario's figures, JSON and plot. It asserts no timing (benchmarks inform).
Scenario 10 (scale-out) needs the bench's own roles, so `--api` skips it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SCENARIOS = {
    "1 HTTP ingest",
    "2 bulk ingest",
    "3 end-to-end at 200/s",
    "4 projection rebuild",
    "5 kernel",
    "6 policy",
    "7 memory",
    "8 tasks end to end",
    "9 queue depth",
}


def test_a_quick_bench_reports_every_scenario(system: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aion", "bench", "--quick", "--api", system, "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (report,) = tmp_path.glob("bench-*.json")
    assert report.with_suffix(".png").stat().st_size > 1000
    document = json.loads(report.read_text())
    assert document["quick"] is True and document["machine"]["cpus"] >= 1
    figures = document["figures"]
    assert {f["scenario"] for f in figures} == SCENARIOS
    for figure in figures:
        assert figure["ours"] and all(math.isfinite(v) for v in figure["ours"]), figure
        if not figure["derived"]:  # a difference of two noisy medians may be below 0
            assert all(v >= 0 for v in figure["ours"]), figure
        if figure["baseline"]:
            assert figure["ratio"] is not None and figure["ratio"] > 0, figure
    assert any(f["derived"] for f in figures)  # the overhead per run is marked
    roles = {f["name"] for f in figures if f["scenario"] == "7 memory"}
    assert roles == {"RSS serve", "RSS worker", "RSS projector", "RSS kernel"}
    ingest = next(f for f in figures if f["name"] == "commands/s")
    assert "errors" not in ingest["note"], ingest["note"]  # every request was a 202
    tasks = next(f for f in figures if f["name"] == "tasks/s, batch of 30")
    assert tasks["ours"][0] > 0, tasks  # tasks ran to succeeded through the real pipeline
    kernel = next(f for f in figures if f["name"] == "tasks/s beside Kernel.run alone")
    assert kernel["baseline"] and "scenario 5" in kernel["baseline_name"], kernel
    assert "Aion benchmarks" in done.stderr  # the table went to the terminal
