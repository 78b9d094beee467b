"""`aion policy simulate` against the real stack: decisions recorded by the stream processor,
replayed from Kafka against a candidate policy file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from aion.cli import app
from tests.conftest import ROOT
from tests.stack.test_domain_api import ECHO, WAIT, WASM, manifest
from tests.stack.test_tenants_api import new_tenant_id

LIMIT = 1000
NO_BIG_INPUTS = (
    '@id("no-big-inputs") forbid(principal, action == Action::"SubmitTask", resource) '
    f"when {{ resource.input_bytes > {LIMIT} }};"
)
SMALL_INPUT = '{"n": 1}'
BIG_INPUT = json.dumps({"text": "x" * (2 * LIMIT)})


def simulate(*args: str) -> Any:
    """The CLI in process; stdout only, so that --json parses."""
    result = CliRunner().invoke(app, ["policy", "simulate", *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture()
def history(api: httpx.Client) -> dict[str, str]:
    """A tenant with an agent and two tasks (small and big input), all allowed as they were."""
    tenant = new_tenant_id()
    t = f"/v1/tenants/{tenant}"
    created = api.post("/v1/tenants", json={"tenant_id": tenant, "display_name": "S"}, headers=WAIT)
    assert created.status_code == 201, created.text
    uploaded = api.post(f"{t}/modules", content=ECHO, headers=WASM)
    assert uploaded.status_code in (200, 201), uploaded.text
    deployed = api.post(f"{t}/agents", json={"manifest": manifest("a1")}, headers=WAIT)
    assert deployed.status_code == 201, deployed.text
    tasks = {}
    for size, text in (("small", SMALL_INPUT), ("big", BIG_INPUT)):
        task = api.post(f"{t}/tasks", json={"agent_name": "a1", "input": text}, headers=WAIT)
        assert task.status_code == 201, task.text
        tasks[size] = task.json()["aggregate_id"]
    return {"tenant": tenant, **tasks}


def test_only_the_big_task_would_be_denied(history: dict[str, str], tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.cedar"
    candidate.write_text(NO_BIG_INPUTS)
    args = ["--tenant", history["tenant"], "--policies", str(candidate)]
    # The three decisions (deploy, two submissions) are produced before the API's answer, but
    # allow a moment should the processor's produce lag behind the outcome it waited for.
    deadline = time.monotonic() + 30
    while True:
        report = json.loads(simulate(*args, "--json").stdout)
        if report["replayed"] >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (report["replayed"], report["changed"], report["skipped"]) == (3, 1, 0), report
    [change] = report["changes"]
    assert change["subject_id"] == history["big"]
    assert (change["subject_type"], change["action"]) == ("task", "SubmitTask")
    assert change["recorded"] == {"decision": "allow", "policy_ids": ["platform-default-permit"]}
    assert change["simulated"]["decision"] == "deny"
    assert change["simulated"]["policy_ids"] == ["no-big-inputs"]

    # The same, limited to the last hour (offsets_for_times), and as a table.
    recent = json.loads(simulate(*args, "--since", "1h", "--json").stdout)
    assert (recent["replayed"], recent["changed"]) == (3, 1)
    table = simulate(*args).stdout
    assert "3 decisions replayed, 1 would change" in table
    assert history["big"].split("/", 1)[1][:8] in table


def test_an_unknown_tenant_has_nothing_to_replay(system: str, tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.cedar"
    candidate.write_text(NO_BIG_INPUTS)
    result = simulate("--tenant", new_tenant_id(), "--policies", str(candidate), "--json")
    report = json.loads(result.stdout)
    assert (report["replayed"], report["changed"], report["changes"]) == (0, 0, [])
    assert "no recorded decisions" in result.stderr


def test_an_invalid_candidate_exits_2_with_the_validators_message(
    system: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.cedar"
    bad.write_text(
        'forbid(principal, action == Action::"SubmitTask", resource) when { resource.nope > 1 };'
    )
    done = subprocess.run(
        [sys.executable, "-m", "aion", "policy", "simulate", "--tenant", "t-x", "--policies",
         str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "invalid Cedar" in done.stderr
    assert "attribute `nope` on entity type `Task` not found" in " ".join(done.stderr.split())
