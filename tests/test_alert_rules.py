"""compose/'s Prometheus config, alert rules and Grafana dashboards, checked without Docker.

``promtool`` (Debian's prometheus package, installed by scripts/bootstrap.sh) validates the
config and rules and runs the rules' unit tests; the rest checks that every metric the rules
and dashboards query is one Aion's code exports, and that every one it exports is on a
dashboard: a renamed metric would otherwise leave an alert that can never fire.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from aion import metrics

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "compose" / "prometheus"
DASHBOARDS = ROOT / "compose" / "grafana" / "dashboards"
METRIC = re.compile(r"\b(aion_[a-z0-9_]+)")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: apt-get install prometheus (scripts/bootstrap.sh)")
    return subprocess.run(
        ["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )


def exported_families() -> dict[str, str]:
    """name -> type of every metric family Aion's processes export (the API's included)."""
    import api.app  # noqa: F401  (defines the API's metrics on the default registry)

    families = {metrics.ProjectionLagCollector.NAME: "gauge"}  # computed at scrape time
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            families[name.removesuffix("_total") if kind == "counter" else name] = kind
    return {name: kind for name, kind in families.items() if name.startswith("aion_")}


def observability_families() -> dict[str, str]:
    """The families of aion/metrics.py and the API's request histogram: the ones the
    dashboards must show (other modules' metrics may be added to them as they see fit)."""
    from api.app import REQUEST_SECONDS

    defined = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    families = {m._name: m._type for m in [*defined, REQUEST_SECONDS]}
    return {**families, metrics.ProjectionLagCollector.NAME: "gauge"}


def exported_series() -> set[str]:
    return {
        name + suffix
        for name, kind in exported_families().items()
        for suffix in SUFFIXES.get(kind, ("",))
    }


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board: dict[str, Any] = json.loads(path.read_text())
        found += [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    return found


def used(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in METRIC.findall(expr)}


def test_prometheus_config_is_valid() -> None:
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout


def test_alert_rules_are_valid() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert alerts - tested == set()


def test_the_issue_alerts_exist() -> None:
    """Error rate, p95 latency, scheduler backlog, failed policy checks, consumer lag."""
    joined = "\n".join(rule_expressions())
    for needed in (
        'status=~"5.."',
        "histogram_quantile(0.95",
        'aion_scheduler_tasks{phase="queued"}',
        'aion_policy_decisions_total{decision="deny"}',
        "aion_projection_lag_messages",
    ):
        assert needed in joined


def test_rules_query_only_metrics_that_aion_exports() -> None:
    names = used(rule_expressions())
    assert len(names) >= 8
    assert names - exported_series() == set()


def test_dashboards_query_only_metrics_that_aion_exports() -> None:
    names = used(dashboard_expressions())
    assert names - exported_series() == set()


def test_every_exported_metric_is_on_a_dashboard() -> None:
    on_dashboards = used(dashboard_expressions())
    assert len(observability_families()) >= 13  # the discovery found them
    missing = {
        name
        for name, kind in observability_families().items()
        if not any(name + suffix in on_dashboards for suffix in SUFFIXES.get(kind, ("",)))
    }
    assert missing == set()


def test_dashboards_use_the_provisioned_datasource() -> None:
    datasource = yaml.safe_load(
        (ROOT / "compose/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]["uid"]
    for path in DASHBOARDS.glob("*.json"):
        board = json.loads(path.read_text())
        uids = {panel["datasource"]["uid"] for panel in board["panels"]}
        assert uids == {datasource}, path.name
