"""A command whose handling raises part-way through a batch (issue 17, finding 7).

The commands before it in the batch are stored, the ones after it are decided, and the
failing one is waited out (a server that does not answer) or rejected with ``internal_error``
(an error that retrying does not cure); nothing is lost, and the partition goes on. Each fault
is a failpoint in the worker's lookup of a module's facts in the S3 store.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from aion.settings import Settings
from tests.conftest import AionProcesses
from tests.stack.test_domain_api import ECHO, WASM, manifest
from tests.stack.test_tenants_api import events_for, new_tenant_id
from tests.stack.test_unproducible import outcome

WAIT = {"Prefer": "wait=20"}
FAULTS = "facts-unreachable@aion.agent.DeployAgent,facts-broken@aion.agent.UpdateAgent"


@pytest.fixture()
def faulty_worker(processes: AionProcesses) -> Iterator[None]:
    """A worker whose S3 lookups fail: twice for a DeployAgent, always for an UpdateAgent."""
    processes.stop_role("worker")
    processes.start_role("worker", AION_FAILPOINTS=FAULTS, AION_WORKER_ID="faulty-facts-test")
    try:
        processes.wait_ready()
        yield
    finally:
        processes.stop_role("worker")
        processes.start_role("worker")
        processes.wait_ready()


def new_tenant(api: httpx.Client) -> str:
    tenant = new_tenant_id()
    created = api.post("/v1/tenants", json={"tenant_id": tenant, "display_name": "F"}, headers=WAIT)
    assert created.status_code == 201, created.text
    uploaded = api.post(f"/v1/tenants/{tenant}/modules", content=ECHO, headers=WASM)
    assert uploaded.status_code in (200, 201), uploaded.text
    return tenant


def accepted(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    return str(response.json()["command_id"])


def agent_version(api: httpx.Client, tenant: str) -> str:
    """The deployed agent's version, once the read model has it."""
    deadline = time.monotonic() + 20
    while (found := api.get(f"/v1/tenants/{tenant}/agents/a1")).status_code == 404:
        assert time.monotonic() < deadline, "the agent never reached the read model"
        time.sleep(0.2)
    assert found.status_code == 200, found.text
    return str(found.json()["agent_version"])


def add_user(api: httpx.Client, tenant: str, user: str) -> httpx.Response:
    body = {"user_id": user, "display_name": user, "roles": ["viewer"]}
    return api.post(f"/v1/tenants/{tenant}/users", json=body)


def test_a_server_that_does_not_answer_is_waited_out_and_the_batch_around_it_is_kept(
    faulty_worker: None, api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant(api)
    # Sent back to back, so the worker takes them in one batch: the deployment in the middle
    # fails twice on its S3 lookup, the commands on either side of it must not be lost.
    before = accepted(add_user(api, tenant, "ana"))
    started = time.monotonic()
    deploy = accepted(api.post(f"/v1/tenants/{tenant}/agents", json={"manifest": manifest("a1")}))
    after = accepted(add_user(api, tenant, "bo"))
    assert outcome(api, before)["status"] == "accepted"
    assert outcome(api, deploy)["status"] == "accepted"
    assert outcome(api, after)["status"] == "accepted"
    assert time.monotonic() - started >= 1.0  # the two failures were waited out (0.5 s, 1 s)
    assert agent_version(api, tenant) == "1.0.0"
    names = [name.rsplit(".", 1)[1] for name, _ in events_for(settings, tenant)]
    assert names.count("UserAdded") == 2, names  # each once: stored, not decided twice


def test_an_error_that_retrying_does_not_cure_rejects_the_command_and_the_tenant_goes_on(
    faulty_worker: None, api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant(api)
    deployed = api.post(
        f"/v1/tenants/{tenant}/agents", json={"manifest": manifest("a1")}, headers=WAIT
    )
    assert deployed.status_code == 201, deployed.text
    update = api.put(
        f"/v1/tenants/{tenant}/agents/a1",
        json={"manifest": manifest("a1", "1.1.0")},
        headers=WAIT,
    )
    assert update.status_code == 500, update.text
    problem = update.json()
    assert problem["type"].endswith("internal-error")
    assert "RuntimeError: failpoint facts-broken" in problem["detail"]
    # The partition goes on: the tenant's next command is decided, the agent is unchanged.
    added = add_user(api, tenant, "cy")
    assert outcome(api, accepted(added))["status"] == "accepted"
    assert agent_version(api, tenant) == "1.0.0"
