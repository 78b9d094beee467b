"""The public contract: schemathesis drives every operation of `/openapi.json` against a
running API, and every answer must agree with the document.

Checked: no 5xx, every status code and content type documented, every documented body schema
met, and a method the document does not list answered 405 with ``Allow`` (RFC 9110). The run is
deterministic (schemathesis's deterministic generation: the same cases every time), bounded in
examples per operation, and calls as a platform admin with the path's ``tenant`` set to a real
tenant, so that tenant-scoped operations reach their handlers rather than a 404.

The fuzzing gets an API process of its own, on the session's worker and projector: whatever it
leaves behind in that process (waits, pooled connections) cannot reach the tests after it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import AionProcesses
from tests.stack.identity import admin_client, admin_headers
from tests.stack.test_tenants_api import new_tenant_id

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "unsupported_method",
)
EXAMPLES_PER_OPERATION = 20  # 1 to 2 minutes on two cores


@pytest.fixture(scope="module")
def fuzzed_api(processes: AionProcesses) -> Iterator[str]:
    """Another `aion serve` on the session's servers, stopped after this module."""
    limits = {
        f"AION_RATE_{n}_{k}": "100000" for n in ("TENANT", "CALLER") for k in ("PER_S", "BURST")
    }
    with processes.extra_api("serve-contract", **limits) as base:  # rate limits out of the way
        yield base


@pytest.fixture(scope="module")
def tenant(system: str) -> str:
    """A tenant of its own: the operations under it find it, and may change it."""
    tenant = new_tenant_id()
    with admin_client(system) as admin:
        made = admin.post(
            "/v1/tenants",
            json={"tenant_id": tenant, "display_name": "Contract"},
            headers={"Prefer": "wait=20"},
        )
        assert made.status_code == 201, made.text
    return tenant


def config(tenant: str) -> str:
    """schemathesis.toml: the admin's credential (off the command line) and the tenant."""
    lines = ["[headers]"]
    lines += [f'{name} = "{value}"' for name, value in admin_headers().items()]
    lines += ["", "[parameters]", f'"path.tenant" = "{tenant}"']
    return "\n".join(lines) + "\n"


def schemathesis(base: str, workdir: Path, tenant: str) -> subprocess.CompletedProcess[str]:
    (workdir / "schemathesis.toml").write_text(config(tenant))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(workdir / "schemathesis.toml"),
            "run",
            f"{base}/openapi.json",
            "--checks",
            ",".join(CHECKS),
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--generation-deterministic",  # the same cases every run (and no example database)
            # The credential is the admin's header; generated X-API-Key and session cookies
            # would only test the gate, which test_security does.
            "--generation-with-security-parameters",
            "false",
            "--max-redirects",
            "0",  # a 303 is the answer documented, not the page it leads to
            "--request-timeout",
            "40",  # above the longest wait the API grants (Prefer: wait=30)
            "--workers",
            "2",
            "--no-color",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_every_answer_agrees_with_the_document(
    system: str, fuzzed_api: str, tenant: str, tmp_path: Path
) -> None:
    run = schemathesis(fuzzed_api, tmp_path, tenant)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20000:]
    # Every operation was tested (schemathesis leaves out the document's own, /openapi.json).
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    tested = re.search(r"Tested: (\d+)", output)
    assert selected is not None and tested is not None, output[-5000:]
    assert int(selected.group(1)) == int(selected.group(2)) == int(tested.group(1)) > 40
    # The worker still decides a new command at once: what the fuzzing sent must not stall
    # it for the tests (and tenants) that come after.
    with admin_client(system) as admin:
        probe = {"tenant_id": new_tenant_id(), "display_name": "After the fuzzing"}
        made = admin.post("/v1/tenants", json=probe, headers={"Prefer": "wait=20"})
        assert made.status_code == 201, made.text


def test_an_undocumented_method_is_a_405_naming_the_allowed_ones(system: str) -> None:
    """Where several routes serve one path, ``Allow`` names all their methods, not the first's."""
    with admin_client(system) as admin:
        refused = admin.request("DELETE", "/v1/tenants/any/agents")
    assert refused.status_code == 405
    assert refused.headers["content-type"] == "application/problem+json"
    assert set(refused.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    console = httpx.post(f"{system}/console/", timeout=10)
    assert console.status_code == 405 and console.headers["allow"] == "GET, HEAD"
