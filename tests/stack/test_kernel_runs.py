"""The WASM kernel end to end: from POST .../tasks to the final run event and the stored artifact.

Every quota and every hostile module goes through the real path: the API, the command processor
and orchestrator, ``aion.kernel.dispatch``, a kernel worker process, its reports, and the S3
store.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import wasmtime

from aion.settings import Settings
from aion.stack.s3 import read_object, s3_client
from tests.conftest import ROOT, AionProcesses
from tests.stack.identity import admin_client
from tests.stack.kafka_reading import Records, names
from tests.stack.test_orchestration import WAIT, new_tenant, task_events
from tests.stack.test_tenants_api import assert_problem

EXAMPLES = ROOT / "kernel" / "examples"
WASM = {"content-type": "application/wasm"}

# Hostile reactor modules (the ABI in docs/agent-abi.md): memory, alloc, run.
PRELUDE = """(memory (export "memory") 1)
    (func (export "alloc") (param i32) (result i32) i32.const 1024)"""
RUN = '(func (export "run") (param i32 i32) (result i64)'
HOSTILE = {
    "spin": f"(module {PRELUDE} {RUN} (loop br 0) i64.const 0))",
    "bomb": f"""(module {PRELUDE} {RUN}
          (loop (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable)) br 0)
          i64.const 0))""",
    "abyss": f"""(module {PRELUDE} (func $down (param i32) (result i32)
          (call $down (i32.add (local.get 0) (i32.const 1))))
        {RUN} (drop (call $down (i32.const 0))) i64.const 0))""",
    "flood": f"""(module (memory (export "memory") 64)
        (func (export "alloc") (param i32) (result i32) i32.const 1024)
        {RUN} i64.const 3000000))""",
    "crash": f"(module {PRELUDE} {RUN} unreachable))",
    "garbage": f"""(module {PRELUDE} (data (i32.const 0) "not json")
        {RUN} i64.const 8))""",
    "slow": f"""(module {PRELUDE} (func (export "run") (param $p i32) (param $n i32) (result i64)
          (local $i i32)
          (loop (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if 0 (i32.lt_u (local.get $i) (i32.const 1000000000))))
          (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
                  (i64.extend_i32_u (local.get $n)))))""",
    "sneaky": f'(module (import "env" "socket" (func)) {PRELUDE} {RUN} i64.const 0))',
}


def upload(api: httpx.Client, tenant: str, wasm: bytes) -> str:
    uploaded = api.post(f"/v1/tenants/{tenant}/modules", content=wasm, headers=WASM)
    assert uploaded.status_code in (200, 201), uploaded.text
    return "sha256:" + hashlib.sha256(wasm).hexdigest()


def example(name: str) -> bytes:
    return bytes(wasmtime.wat2wasm((EXAMPLES / f"{name}.wat").read_text()))


def agent(
    api: httpx.Client,
    tenant: str,
    name: str,
    wasm: bytes,
    abi: str = "reactor",
    **extra: Any,
) -> httpx.Response:
    quotas = {"fuel": 50_000_000, "memory_mb": 16, "timeout_ms": 3000, **extra.pop("quotas", {})}
    manifest = {
        "agent_name": name,
        "version": "1.0.0",
        "module_digest": upload(api, tenant, wasm),
        "abi": abi,
        "entrypoint": "_start" if abi == "wasi_command" else "run",
        "quotas": quotas,
        **extra,
    }
    return api.post(f"/v1/tenants/{tenant}/agents", json={"manifest": manifest}, headers=WAIT)


def run_task(
    api: httpx.Client, settings: Settings, tenant: str, agent_name: str, body: Any, until: str
) -> Records:
    task_id = f"{agent_name}-{int(time.time() * 1000)}"
    payload = {"task_id": task_id, "agent_name": agent_name, "input": json.dumps(body)}
    submitted = api.post(f"/v1/tenants/{tenant}/tasks", json=payload, headers=WAIT)
    assert submitted.status_code == 201, submitted.text
    return task_events(settings, tenant, task_id, until, timeout=60)


def last(records: Records, short_name: str) -> dict[str, Any]:
    return [v for n, v in records if n.endswith("." + short_name)][-1]


@pytest.fixture(scope="module")
def tenant(system: str) -> str:
    with admin_client(system, timeout=60) as client:
        return new_tenant(client)


def test_examples_run_and_their_output_is_stored_content_addressed(
    api: httpx.Client, settings: Settings, tenant: str
) -> None:
    assert agent(api, tenant, "echo", example("echo")).status_code == 201
    events = run_task(api, settings, tenant, "echo", {"text": "hello"}, "TaskSucceeded")
    assert names(events)[-4:] == ["RunStarted", "ArtifactStored", "RunSucceeded", "TaskSucceeded"]
    succeeded = last(events, "RunSucceeded")
    assert 0 < succeeded["fuel_used"] <= 50_000_000
    artifact = last(events, "ArtifactStored")
    assert artifact["digest"] == succeeded["output_digest"]
    s3 = s3_client(settings.s3, settings.s3_access_key, settings.s3_secret_key, False)
    stored = read_object(s3, settings.s3_bucket, artifact["object_key"])
    assert json.loads(stored) == {"text": "hello"}
    assert "sha256:" + hashlib.sha256(stored).hexdigest() == artifact["digest"]

    assert agent(api, tenant, "stats", example("text_stats")).status_code == 201
    events = run_task(api, settings, tenant, "stats", {"text": "one two\nthree"}, "TaskSucceeded")
    output = read_object(s3, settings.s3_bucket, last(events, "ArtifactStored")["object_key"])
    assert json.loads(output) == {"bytes": 13, "words": 3, "lines": 2}

    assert (
        agent(api, tenant, "wasi-echo", example("wasi_echo"), abi="wasi_command").status_code == 201
    )
    events = run_task(api, settings, tenant, "wasi-echo", [1, 2, 3], "TaskSucceeded")
    artifact = last(events, "ArtifactStored")
    assert json.loads(read_object(s3, settings.s3_bucket, artifact["object_key"])) == [1, 2, 3]


def test_the_model_host_call_needs_its_capability(
    api: httpx.Client, settings: Settings, tenant: str
) -> None:
    registered = api.post(
        f"/v1/tenants/{tenant}/models",
        json={"model_name": "mini", "provider": "local", "kind": "completion"},
        headers=WAIT,
    )
    assert registered.status_code in (201, 409), registered.text
    wasm = example("ask_model")
    refused = agent(api, tenant, "asker-denied", wasm, models=["mini"])
    assert_problem(refused, 422, "/manifest/module_digest")  # imports aion.infer, not granted
    granted = agent(api, tenant, "asker", wasm, models=["mini"], capabilities=["model_inference"])
    assert granted.status_code == 201, granted.text
    events = run_task(api, settings, tenant, "asker", "what is aion", "TaskSucceeded")
    assert last(events, "RunSucceeded")["output_bytes"] > 0


@pytest.mark.parametrize(
    ("module", "quotas", "reason"),
    [
        ("spin", {"fuel": 1_000_000}, "out_of_fuel"),
        ("spin", {"fuel": 10**10, "timeout_ms": 500}, "timeout"),
        ("bomb", {"memory_mb": 4}, "memory_limit"),
        ("abyss", {}, "trap"),
        ("flood", {"memory_mb": 8}, "output_too_large"),
        ("crash", {}, "trap"),
        ("garbage", {}, "invalid_output"),
    ],
)
def test_a_hostile_module_fails_its_run_with_the_precise_reason_and_the_worker_goes_on(
    api: httpx.Client,
    settings: Settings,
    tenant: str,
    processes: AionProcesses,
    module: str,
    quotas: dict[str, int],
    reason: str,
) -> None:
    name = f"{module}-{reason.replace('_', '-')}"
    wasm = bytes(wasmtime.wat2wasm(HOSTILE[module]))
    assert agent(api, tenant, name, wasm, quotas=quotas).status_code == 201
    events = run_task(api, settings, tenant, name, {}, "TaskFailed")
    failed = last(events, "RunFailed")
    assert failed["reason"] == reason, failed
    assert failed["message"]
    assert processes.procs["kernel"].poll() is None  # the kernel worker survived it
    # ...and still runs well-behaved agents.
    if agent(api, tenant, "echo", example("echo")).status_code not in (201, 409):
        pytest.fail("could not deploy echo")
    run_task(api, settings, tenant, "echo", {"after": module}, "TaskSucceeded")


def test_a_module_importing_what_is_not_granted_is_refused_at_deploy(
    api: httpx.Client, tenant: str
) -> None:
    wasm = bytes(wasmtime.wat2wasm(HOSTILE["sneaky"]))
    refused = agent(api, tenant, "sneaky", wasm)
    problem = assert_problem(refused, 422, "/manifest/module_digest")
    assert "env" in problem["detail"] and "socket" in problem["detail"]


def test_a_kernel_worker_killed_mid_run_leaves_the_task_to_a_retry(
    api: httpx.Client, settings: Settings, tenant: str, processes: AionProcesses
) -> None:
    wasm = bytes(wasmtime.wat2wasm(HOSTILE["slow"]))
    quotas = {"fuel": 10**10, "timeout_ms": 20_000, "max_retries": 1, "retry_backoff_ms": 100}
    assert agent(api, tenant, "slow", wasm, quotas=quotas).status_code == 201
    task_id = f"slow-{int(time.time() * 1000)}"
    body = {"task_id": task_id, "agent_name": "slow", "input": "{}"}
    assert api.post(f"/v1/tenants/{tenant}/tasks", json=body, headers=WAIT).status_code == 201
    task_events(settings, tenant, task_id, "RunStarted", timeout=60)
    kernel = processes.procs["kernel"]
    kernel.kill()  # mid-run, no goodbye
    kernel.wait()
    processes.start_role("kernel")
    # The new worker takes the uncommitted dispatch over (or the watchdog fails the run as
    # worker_lost and the orchestrator retries it): either way the task finishes, once.
    events = task_events(settings, tenant, task_id, "TaskSucceeded", timeout=120)
    assert names(events).count("TaskSucceeded") == 1


def test_runs_verify_reexecutes_a_recorded_run(
    api: httpx.Client, settings: Settings, tenant: str
) -> None:
    if agent(api, tenant, "echo", example("echo")).status_code not in (201, 409):
        pytest.fail("could not deploy echo")
    events = run_task(api, settings, tenant, "echo", {"verify": True}, "TaskSucceeded")
    run_id = last(events, "RunSucceeded")["run_id"]
    verified = subprocess.run(
        [sys.executable, "-m", "aion", "runs", "verify", f"{tenant}/{run_id}", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stderr
    result = json.loads(verified.stdout)
    assert result["matches"] and result["recorded_digest"] == result["reproduced_digest"]
    unknown = subprocess.run(
        [sys.executable, "-m", "aion", "runs", "verify", f"{tenant}/nope.1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr
    assert "cannot verify" in unknown.stdout + unknown.stderr


def test_examples_are_package_data() -> None:
    assert {p.stem for p in Path(EXAMPLES).glob("*.wat")} >= {
        "echo", "text_stats", "json_wrap", "ask_model", "wasi_echo",
    }  # fmt: skip


def unit_module(name: str) -> bytes:
    path = ROOT / "tests" / "unit" / "kernel_modules" / f"{name}.wat"
    return bytes(wasmtime.wat2wasm(path.read_text()))


def test_progress_is_streamed_as_run_progress_events(
    api: httpx.Client, settings: Settings, tenant: str
) -> None:
    deployed = agent(api, tenant, "chatty", unit_module("progress"), capabilities=["progress"])
    assert deployed.status_code == 201, deployed.text
    events = run_task(api, settings, tenant, "chatty", {}, "TaskSucceeded")
    progress = [v for n, v in events if n.endswith(".RunProgress")]
    assert [(p["sequence"], p["percent"], p["message"]) for p in progress] == [
        (1, 50.0, "half"),
        (2, None, "busy"),
    ]  # the malformed third report is logged, not streamed
    assert names(events).index("RunStarted") < names(events).index("RunProgress")


def test_a_scratch_html_file_is_served_inert_as_an_attachment(
    api: httpx.Client, settings: Settings, tenant: str
) -> None:
    """Issue 17, finding 5, the attack: a tenant's module leaves ``x.html`` with a script in
    it; the link to it must never run that script on the API's origin."""
    wasm = unit_module("wasi_scratch_html")
    granted = agent(api, tenant, "xss", wasm, abi="wasi_command", capabilities=["scratch_dir"])
    assert granted.status_code == 201, granted.text
    events = run_task(api, settings, tenant, "xss", {}, "TaskSucceeded")
    stored = next(v for n, v in events if n.endswith(".ArtifactStored") and
                  v["artifact_id"] == "file:x.html")  # fmt: skip
    assert stored["content_type"] == "text/html"  # recorded as what it is...
    path = f"/v1/tenants/{tenant}/tasks/{stored['task_id']}/runs/{stored['run_id']}/artifacts"
    page = api.get(f"{path}/file:x.html")
    assert page.status_code == 200, page.text
    assert page.content == b"<script>alert(document.cookie)</script>"
    # ...and served as nothing a browser runs, to be saved, never rendered on our origin.
    assert page.headers["content-type"] == "application/octet-stream"
    assert page.headers["content-disposition"] == 'attachment; filename="x.html"'
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["content-security-policy"].startswith("sandbox")
    output = api.get(f"{path}/output")
    assert output.headers["content-type"] == "application/json"  # passive: as recorded
    assert output.headers["content-disposition"] == 'attachment; filename="output"'


def test_files_left_in_a_granted_scratch_directory_become_artifacts(
    api: httpx.Client, settings: Settings, tenant: str
) -> None:
    wasm = unit_module("wasi_scratch")
    granted = agent(api, tenant, "scribe", wasm, abi="wasi_command", capabilities=["scratch_dir"])
    assert granted.status_code == 201, granted.text
    events = run_task(api, settings, tenant, "scribe", {}, "TaskSucceeded")
    artifacts = {v["artifact_id"]: v for n, v in events if n.endswith(".ArtifactStored")}
    assert set(artifacts) == {"file:out.txt", "output"}
    s3 = s3_client(settings.s3, settings.s3_access_key, settings.s3_secret_key, False)
    assert read_object(s3, settings.s3_bucket, artifacts["file:out.txt"]["object_key"]) == b"hello"
    assert artifacts["file:out.txt"]["content_type"] == "text/plain"
    output = read_object(s3, settings.s3_bucket, artifacts["output"]["object_key"])
    assert json.loads(output) == {"scratch": True}
