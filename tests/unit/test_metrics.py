"""The roles' metrics move when their code runs, and a role's port serves them."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from aion import metrics, tracing
from aion.settings import Settings
from aion.trace_file import read_spans
from kernel import Kernel
from streams import kernel_worker
from streams.command_processor import observe, outcome_of
from streams.orchestrator_timer import ASK_AGAIN_SECONDS, should_ask, tasks_by_phase
from streams.plan import Emission
from tests.unit.kernel_support import RecordingHost, example, hostile


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def emission(record: str, **value: object) -> Emission:
    return Emission("t", "k", record, {"envelope": {}, **value})


def test_outcomes_and_policy_verdicts_are_counted() -> None:
    from commands.model import Command

    verdict = emission("aion.enforcement.EnforcementDecided", action="SubmitTask", decision="deny")
    rejected = emission("aion.CommandRejected")
    assert outcome_of([emission("aion.task.TaskSubmitted")]) == "accepted"
    assert outcome_of([rejected]) == "rejected"
    assert outcome_of([emission("aion.task.TaskSubmitted"), verdict]) == "denied"

    before = sample("aion_policy_decisions_total", action="SubmitTask", decision="deny")
    decided = sample(
        "aion_commands_decided_total", command_type="aion.task.SubmitTask", outcome="denied"
    )
    command = Command("aion.task.SubmitTask", {"issued_at": 1_000}, {})
    observe(command, [emission("aion.task.TaskSubmitted"), verdict])
    assert sample("aion_policy_decisions_total", action="SubmitTask", decision="deny") == before + 1
    assert (
        sample("aion_commands_decided_total", command_type="aion.task.SubmitTask", outcome="denied")
        == decided + 1
    )
    latency = sample("aion_command_decision_seconds_count", command_type="aion.task.SubmitTask")
    assert latency >= 1


def test_backlog_counts_the_scheduler_counters_by_phase() -> None:
    items = [
        (b"scheduler:acme", b'{"state": {"queued": 2, "active": 1, "retrying": 0}}'),
        (b"scheduler:other", b'{"state": {"queued": 5, "active": 0, "retrying": 3}}'),
        (b"scheduler:empty", b'{"state": null}'),
        (b"slots:acme/echo", b'{"state": {"active": 9}}'),
    ]
    assert tasks_by_phase(items) == {"queued": 7, "active": 1, "retrying": 3}


def test_the_timer_asks_again_at_once_when_the_last_tick_left_more_to_do() -> None:
    assert should_ask(None, 1000, 50.0)  # never asked
    assert not should_ask((50.0, 1000), 1000, 51.0)  # that Tick is on its way
    assert should_ask((50.0, 1000), 1000, 50.0 + ASK_AGAIN_SECONDS)  # it got lost: again
    assert should_ask((50.0, 1000), 2000, 51.0)  # handled, and more is due


def test_a_wasm_run_is_measured_and_traced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "traces.jsonl"
    provider = tracing.provider("kernel", path)
    monkeypatch.setattr(kernel_worker, "tracer", provider.get_tracer("test"))
    kernel = Kernel()
    dispatch = {
        "agent_version": "1.0.0",
        "input": '{"text": "hi"}',
        "manifest": {
            "agent_name": "echo",
            "abi": "reactor",
            "entrypoint": "run",
            "quotas": {"fuel": 50_000_000, "memory_mb": 16, "timeout_ms": 5000},
        },
    }
    ok_before = sample("aion_kernel_runs_total", outcome="succeeded", reason="none")
    fuel_before = sample("aion_kernel_fuel_used_count", outcome="succeeded")
    result = kernel_worker.traced_run(kernel, example(kernel, "echo"), dispatch, RecordingHost())
    assert result.ok
    assert sample("aion_kernel_runs_total", outcome="succeeded", reason="none") == ok_before + 1
    assert sample("aion_kernel_fuel_used_count", outcome="succeeded") == fuel_before + 1

    trapped = sample("aion_kernel_runs_total", outcome="failed", reason="trap")
    kernel_worker.traced_run(kernel, hostile(kernel, "unreachable"), dispatch, RecordingHost())
    assert sample("aion_kernel_runs_total", outcome="failed", reason="trap") == trapped + 1
    provider.shutdown()
    kernel.close()
    ok, failed = read_spans(path)
    assert ok["attributes"]["aion.run.outcome"] == "succeeded"
    assert ok["attributes"]["aion.run.fuel_used"] == result.fuel_used > 0
    assert (failed["attributes"]["aion.run.reason"], failed["status"]) == ("trap", "ERROR")


def test_a_role_serves_its_metrics_and_a_taken_port_is_not_fatal() -> None:
    # Our metrics without the lag collector, which another test may have registered and which
    # would wait for a Kafka that unit tests do not start.
    registry = CollectorRegistry()
    registry.register(metrics.COMMANDS_DECIDED)
    registry.register(metrics.KERNEL_RUN_SECONDS)
    port = free_port()
    settings = Settings(metrics_port=port)
    assert metrics.serve(settings, "worker", registry) == port
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "# TYPE aion_commands_decided_total counter" in body
    assert "# TYPE aion_kernel_run_duration_seconds histogram" in body
    assert metrics.serve(settings, "worker", registry) == 0  # taken: a warning, not a crash
    assert metrics.serve(Settings(metrics_port=0), "worker") == 0


def test_default_ports_per_role() -> None:
    settings = Settings(metrics_port=None)
    ports = [settings.metrics_port_of(role) for role in ("worker", "kernel", "projector")]
    assert ports == [18101, 18102, 18103]
