"""The benchmark harness's pure parts: reading wrk's report, figures and their ratios."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from aion.bench.harness import Figure
from aion.bench.http_load import parse
from aion.bench.run import NAMES, chosen
from aion.cli import app

WRK = """Running 2s test @ http://127.0.0.1:8000/v1/tenants/t/models
  1 threads and 32 connections
  Latency Distribution
     50%  850.00us
     75%   12.06ms
     90%   15.14ms
     99%    1.20s
  4012 requests in 2.00s, 1.31MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   2006.50
Transfer/sec:    670.97KB
status 202 4005
status 429 7
"""


def test_wrk_output_is_read_with_units_and_errors() -> None:
    load = parse(WRK)
    assert load.requests_per_s == 2006.5 and load.requests == 4012
    assert load.p50_ms == pytest.approx(0.85) and load.p99_ms == pytest.approx(1200)
    assert load.failed == 7 + 3 and load.bad_statuses == {429: 7}


def test_output_without_a_summary_is_an_error() -> None:
    with pytest.raises(ValueError, match="unexpected wrk output"):
        parse("unable to connect to 127.0.0.1:1 Connection refused")


def test_a_figure_reports_median_spread_ratio_and_target() -> None:
    figure = Figure(
        "s", "rate", "/s", [3, 1, 2], [4, 4, 8], "bare", check=lambda f: (f.ratio or 0) >= 0.5
    )
    assert (figure.median, figure.spread, figure.ratio, figure.met) == (2, (1, 3), 0.5, True)
    assert figure.as_json()["ratio"] == 0.5 and "check" not in figure.as_json()
    assert Figure("s", "rss", "MiB", [5.0]).met is None


def test_only_picks_scenarios_by_number_in_their_usual_order() -> None:
    assert chosen(None) == list(NAMES)
    assert chosen(["4", "1"]) == ["1 HTTP ingest", "4 projection rebuild"]


def test_only_an_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"no scenario 11: choose from 1, 2, 3, .*, 9, 10$"):
        chosen(["1", "11"])


def test_scenario_8_follows_5_whose_kernel_rate_it_reads() -> None:
    assert chosen(["8", "5", "10"]) == ["5 kernel", "8 tasks end to end", "10 scale-out"]


def test_the_cli_refuses_an_unknown_scenario_before_starting_anything() -> None:
    result = CliRunner().invoke(app, ["bench", "--only", "11"])
    assert result.exit_code == 1
    assert "no scenario 11" in result.output


def test_a_derived_figure_says_so_in_its_json() -> None:
    figure = Figure("5 kernel", "overhead per run", "us", [-8.8, 3.0], derived=True)
    assert figure.as_json()["derived"] is True and figure.median == pytest.approx(-2.9)
    assert Figure("s", "rate", "/s", [1.0]).as_json()["derived"] is False
