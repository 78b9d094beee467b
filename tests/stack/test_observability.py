"""One task, observed: the roles' Prometheus counters move, and one trace follows it from the
API through the command processor and the kernel's WASM run to the projections.

The processes are the session's (tests/conftest.py): each writes its spans to
``.aion/logs/test-processes/traces-<role>.jsonl`` and serves metrics on its role's port.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from aion.settings import Settings
from aion.trace_file import read_spans
from streams.plan import derived_id
from tests.conftest import AionProcesses
from tests.stack.identity import admin_client
from tests.stack.test_kernel_runs import agent, example
from tests.stack.test_orchestration import WAIT, new_tenant, task_events

ROLES = ("worker", "kernel", "projector")
Span = dict[str, Any]
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(role: str) -> dict[str, float]:
    """``name{labels}`` -> value, from the role's /metrics."""
    port = Settings(metrics_port=None).metrics_port_of(role)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            found[match[1] + (match[2] or "")] = float(match[3])
    return found


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include these."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(
        value
        for key, value in samples.items()
        if key.split("{")[0] == name and all(w in key for w in wanted)
    )


def eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("not within the time allowed")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def observed(system: str, settings: Settings) -> dict[str, Any]:
    """A tenant whose echo task ran, with every role's metrics before and after."""
    with admin_client(system, timeout=60) as api:
        return run_one_task(api, settings)


def run_one_task(api: httpx.Client, settings: Settings) -> dict[str, Any]:
    tenant = new_tenant(api)
    assert agent(api, tenant, "echo", example("echo")).status_code == 201
    before = {role: scrape(role) for role in ROLES}
    task_id = f"observed-{int(time.time() * 1000)}"
    body = {"task_id": task_id, "agent_name": "echo", "input": json.dumps({"text": "hi"})}
    submitted = api.post(f"/v1/tenants/{tenant}/tasks", json=body, headers=WAIT)
    assert submitted.status_code == 201, submitted.text
    task_events(settings, tenant, task_id, "TaskSucceeded", timeout=60)
    return {
        "tenant": tenant,
        "task_id": task_id,
        "command_id": submitted.json()["command_id"],
        "before": before,
    }


def moved(role: str, before: dict[str, float], name: str, **labels: str) -> bool:
    return total(scrape(role), name, **labels) > total(before, name, **labels)


def test_worker_counts_decisions_policy_verdicts_and_latency(observed: dict[str, Any]) -> None:
    before = observed["before"]["worker"]
    task = "aion.task.SubmitTask"
    eventually(
        lambda: moved(
            "worker", before, "aion_commands_decided_total", command_type=task, outcome="accepted"
        )
    )
    after = scrape("worker")
    assert total(after, "aion_policy_decisions_total", action="SubmitTask", decision="allow") > (
        total(before, "aion_policy_decisions_total", action="SubmitTask", decision="allow")
    )
    assert total(after, "aion_command_decision_seconds_count", command_type=task) > total(
        before, "aion_command_decision_seconds_count", command_type=task
    )
    reports = "aion.run.RecordRunFinished"  # a run is one report (decision 51)
    assert total(after, "aion_commands_decided_total", command_type=reports) > total(
        before, "aion_commands_decided_total", command_type=reports
    )
    # the backlog gauge is set by the orchestrator's timer, every tick
    eventually(lambda: 'aion_scheduler_tasks{phase="queued"}' in scrape("worker"))


def test_kernel_counts_the_run_its_duration_and_fuel(observed: dict[str, Any]) -> None:
    before = observed["before"]["kernel"]
    eventually(
        lambda: moved(
            "kernel", before, "aion_kernel_runs_total", outcome="succeeded", reason="none"
        )
    )
    after = scrape("kernel")
    for histogram in ("aion_kernel_run_duration_seconds_count", "aion_kernel_fuel_used_count"):
        assert total(after, histogram, outcome="succeeded") > total(
            before, histogram, outcome="succeeded"
        )
    assert total(after, "aion_kernel_fuel_used_sum", outcome="succeeded") > total(
        before, "aion_kernel_fuel_used_sum", outcome="succeeded"
    )


def test_projector_counts_events_batches_and_lag(observed: dict[str, Any]) -> None:
    before = observed["before"]["projector"]
    for projection in ("core", "live"):
        eventually(
            lambda p=projection: moved(  # type: ignore[misc]
                "projector", before, "aion_projection_events_applied_total", projection=p
            )
        )
    after = scrape("projector")
    assert total(after, "aion_projection_batch_seconds_count", projection="core") > total(
        before, "aion_projection_batch_seconds_count", projection="core"
    )
    assert 'aion_projection_lag_messages{projection="core"}' in after


# --- one trace ------------------------------------------------------------------------------


def spans_of(processes: AionProcesses, role: str, trace_id: str) -> list[Span]:
    return [
        s for s in read_spans(processes.logs / f"traces-{role}.jsonl") if s["trace_id"] == trace_id
    ]


def test_one_trace_follows_the_task_through_every_role(
    observed: dict[str, Any], processes: AionProcesses
) -> None:
    command_id = observed["command_id"]
    found: dict[str, list[Span]] = {}

    def api_span() -> Span | None:
        for span in read_spans(processes.logs / "traces-serve.jsonl"):
            if span["attributes"].get("aion.command.id") == command_id:
                return span
        return None

    eventually(lambda: api_span() is not None)
    root = api_span()
    assert root is not None
    assert (root["kind"], root["parent_span_id"], root["service"]) == ("PRODUCER", None, "aion-api")
    trace_id = root["trace_id"]
    key = f"{observed['tenant']}/{observed['task_id']}"

    def complete() -> bool:
        for role in ROLES:
            found[role] = spans_of(processes, role, trace_id)
        projected = {
            s["attributes"].get("aion.event.type")
            for s in found["projector"]
            if s["attributes"].get("messaging.kafka.message.key") == key
        }
        return {"aion.task.TaskSubmitted", "aion.task.TaskSucceeded"} <= projected

    eventually(complete, timeout=60)
    by_id = {s["span_id"]: s for role in ROLES for s in found[role]} | {root["span_id"]: root}

    # the command processor continues the API's span
    [decided] = [
        s for s in found["worker"] if s["attributes"].get("messaging.message.id") == command_id
    ]
    # (a task's commands are decided by the task stage, keyed by the task: decision 56)
    assert (decided["name"], decided["kind"]) == ("process aion.tasks", "CONSUMER")
    assert decided["parent_span_id"] == root["span_id"]
    assert decided["attributes"]["messaging.system"] == "kafka"
    assert decided["attributes"]["messaging.destination.name"] == "aion.tasks"
    assert decided["attributes"]["messaging.kafka.message.key"] == key

    # admission, on the tenant's partition, continues it: AdmitTask, then ScheduleRun
    [admitted] = [
        s
        for s in found["worker"]
        if s["attributes"].get("aion.command.type") == "aion.admission.AdmitTask"
        and s["attributes"].get("messaging.kafka.message.key") == observed["tenant"]
    ]
    assert admitted["name"] == "process aion.commands"
    assert admitted["trace_id"] == decided["trace_id"]
    assert decided["attributes"]["messaging.operation"] == "process"
    assert "messaging.kafka.message.offset" in decided["attributes"]

    # the kernel continues the span that dispatched the run; the WASM run is its child
    [dispatch] = [s for s in found["kernel"] if s["name"] == "process aion.kernel.dispatch"]
    assert dispatch["kind"] == "CONSUMER"
    assert by_id[dispatch["parent_span_id"]]["service"] == "aion-worker"
    [run] = [s for s in found["kernel"] if s["name"] == "wasm run"]
    assert run["parent_span_id"] == dispatch["span_id"]
    assert run["attributes"]["aion.run.outcome"] == "succeeded"
    assert run["attributes"]["aion.run.fuel_used"] > 0

    # the run's reports are decided in spans under the kernel's
    reports = [
        s
        for s in found["worker"]
        if str(s["attributes"].get("aion.command.type")).startswith("aion.run.Record")
    ]
    assert reports
    assert all(by_id[s["parent_span_id"]]["service"] == "aion-kernel" for s in reports)

    # every projected event is a child of the command processor's span that produced it
    stages = {"process aion.tasks", "process aion.commands"}
    for span in found["projector"]:
        parent = by_id[span["parent_span_id"]]
        assert parent["service"] == "aion-worker" and parent["name"] in stages


def test_the_kernels_log_line_names_the_command_run_and_trace(
    observed: dict[str, Any], processes: AionProcesses
) -> None:
    """JSON log lines carry the ids of the record being handled (aion.telemetry)."""
    run_id = f"{observed['task_id']}.1"

    def line() -> dict[str, Any] | None:
        for text in (processes.logs / "kernel.log").read_text().splitlines():
            if run_id in text and text.startswith("{"):
                entry: dict[str, Any] = json.loads(text)
                if entry.get("run_id") == run_id:
                    return entry
        return None

    eventually(lambda: line() is not None)
    entry = line()
    assert entry is not None
    # The ScheduleRun that dispatched it: admission's answer to the SubmitTask's AdmitTask,
    # each id derived from the one before (decision 56); the correlation is the SubmitTask's.
    task_id = observed["task_id"]
    admit = derived_id(observed["command_id"], f"admit/{task_id}")
    assert entry["command_id"] == derived_id(admit, f"schedule/{task_id}/1")
    assert entry["correlation_id"] == observed["command_id"]
    assert entry["role"] == "kernel" and len(entry["trace_id"]) == 32


def test_the_workers_log_is_json_with_the_commands_ids(
    observed: dict[str, Any], processes: AionProcesses
) -> None:
    def lines() -> list[dict[str, Any]]:
        found = []
        for text in (processes.logs / "worker.log").read_text().splitlines():
            if observed["command_id"] in text and text.startswith("{"):
                found.append(json.loads(text))
        return found

    eventually(lambda: any(e.get("command_id") == observed["command_id"] for e in lines()))
    [decided] = [e for e in lines() if e["message"].startswith("command aion.task.SubmitTask")]
    assert (decided["role"], decided["correlation_id"]) == ("worker", observed["command_id"])
    assert len(decided["trace_id"]) == 32
