"""The task scenarios' pure parts: a trial's rates and percentiles, the plans, the peer check,
and the plot's panels (no stack needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aion.bench import tasks
from aion.bench.harness import Figure
from aion.bench.plot import latencies, plot, ratios, throughputs
from aion.bench.queue_depth import DepthPlan
from aion.bench.task_load import Trial
from aion.settings import Settings


def test_a_trial_rates_from_the_first_submit_to_the_last_seen() -> None:
    trial = Trial({"a": 100.0, "b": 100.0, "c": 101.0})
    trial.seen = {"a": (101.0, "succeeded"), "b": (102.0, "succeeded"), "c": (104.0, "failed")}
    assert trial.rate() == pytest.approx(2 / 4)  # failed tasks are no throughput
    assert trial.seen_rate() == pytest.approx(3 / 4)
    assert trial.latencies_ms() == pytest.approx([1000, 2000])
    assert trial.note() == "1 ended otherwise than succeeded"


def test_unfinished_tasks_count_as_the_wait_so_far() -> None:
    trial = Trial({"a": 10.0, "b": 10.0}, {"a": (11.0, "succeeded")}, watched_until=40.0)
    assert trial.latencies_ms() == pytest.approx([1000, 30_000])
    p50, _, p99 = trial.percentiles()
    assert p99 == pytest.approx(30_000) and p50 >= 1000
    assert "1 of 2 not seen ended in time" in trial.note() and "lower bounds" in trial.note()


def test_an_empty_trial_has_no_rate_and_no_percentiles() -> None:
    trial = Trial()
    assert trial.rate() == 0.0
    assert all(v != v for v in trial.percentiles())  # NaN


def test_the_queue_depth_plan_bursts_a_tenth_of_the_depth_within_a_batch() -> None:
    assert DepthPlan.of(True, None).depth == 1000 and DepthPlan.of(True, None).burst == 100
    assert DepthPlan.of(False, None) == DepthPlan(50_000, 1000, 5, 900)
    assert DepthPlan.of(False, 200).burst == 50


def test_the_peer_is_missing_without_the_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no temporal on PATH either
    settings = Settings(cache_dir=tmp_path)
    assert tasks.peer_missing(settings) == "Temporal peer not installed: run make peer-temporal"
    binary = tmp_path / "go" / "bin" / "temporal"
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    assert tasks.temporal_binary(settings) == binary


FIGURES = [
    Figure("1 HTTP ingest", "commands/s", "/s", [1878.0], [3689.0], "bare endpoint"),
    Figure("1 HTTP ingest", "p99 latency", "ms", [66.0], [57.0], "bare", higher_is_better=False),
    Figure("6 policy", "API access decisions/s", "/s", [1.8e6], [7003.0], "bare cedarpy"),
    Figure("5 kernel", "overhead per run", "us", [-8.8], higher_is_better=False, derived=True),
    Figure("8 tasks end to end", "tasks/s, batch of 100", "/s", [13.0], [19.0], "Temporal"),
    Figure("7 memory", "RSS serve", "MiB", [372.0]),
]


def test_the_plot_puts_each_kind_on_its_panel_in_absolute_values() -> None:
    assert [b.text for b in throughputs(FIGURES)] == ["1,878 /s", "1,800,000 /s", "13.0 /s"]
    assert throughputs(FIGURES)[0].base_text == "3,689 /s bare endpoint"
    times = latencies(FIGURES)
    assert [b.text for b in times] == ["66.0 ms", "-8.80 us"]
    assert times[1].ours == pytest.approx(-0.0088)  # in ms, shown as a label only


def test_ratios_are_how_many_times_better_than_the_baseline() -> None:
    found = {b.label.split("\n")[0]: b.ours for b in ratios(FIGURES)}
    assert found["1 HTTP ingest: commands/s"] == pytest.approx(1878 / 3689)
    assert found["1 HTTP ingest: p99 latency"] == pytest.approx(57 / 66)  # lower is better
    assert "5 kernel: overhead per run" not in found


def test_the_plot_is_written_even_with_a_negative_derived_figure(tmp_path: Path) -> None:
    plot(FIGURES, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    plot([], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
