"""Issue 17, finding 2: reads that wait for the read model (``?after_command=``, ``?after=``).

The attack: twelve viewer GETs with ``after_command=<random uuid>`` each held one of the API's
ten pooled Postgres connections for 10 s, and a plain GET waited 9 s behind them. Now a waiting
read holds no connection, a caller may have only so many reads waiting, and a command id
nobody knows is not waited for at all.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from api.read_waits import WAIT_S, WAITS_PER_CALLER
from schemas.topics import events_topic
from tests.stack.identity import admin_client, bearer
from tests.stack.test_tenants_api import assert_problem, new_tenant_id

POOL_SIZE = 10  # the API's Postgres pool (api/state.py)
WAIT = {"Prefer": "wait=20"}
# A position the read model will not reach while the test runs: a read after it waits it out.
FAR = f"{events_topic('task')}:0:{2**62}"


@pytest.fixture(scope="module")
def tenant(system: str) -> str:
    with admin_client(system) as api:
        tenant_id = new_tenant_id()
        decided(api, api.post("/v1/tenants", json={"tenant_id": tenant_id, "display_name": "W"}))
        model = {"model_name": "m", "provider": "p", "kind": "chat"}
        registered = api.post(f"/v1/tenants/{tenant_id}/models", json=model)
        assert registered.status_code == 202, registered.text
        # Read your write through a wait: the path the fix must keep. (A worker that has just
        # joined its group may take longer than one read waits: then the read is stale.)
        for _ in range(6):
            read = api.get(f"/v1/tenants/{tenant_id}/models", params=after(registered))
            assert read.status_code == 200, read.text
            if read.headers["aion-consistency"] != "stale":
                break
        assert read.headers["aion-consistency"] == "after-command"
        assert [m["model_name"] for m in read.json()["items"]] == ["m"]
        return tenant_id


def after(response: httpx.Response) -> dict[str, str]:
    return {"after_command": str(response.json()["command_id"])}


def decided(api: httpx.Client, response: httpx.Response) -> None:
    """Wait until the command is decided (and in the read model), however late."""
    assert response.status_code in (201, 202), response.text
    status_url = f"/v1/commands/{response.json()['command_id']}"
    for _ in range(300):
        if api.get(status_url).json().get("status") != "pending":
            return
        time.sleep(0.2)
    pytest.fail(f"{status_url} was not decided within a minute")


def read(system: str, tenant: str, caller: str, **params: str) -> httpx.Response:
    """One viewer's read of the tenant's agents, as its own caller (its own cap)."""
    headers = bearer(caller, tenant, "viewer")
    with httpx.Client(base_url=system, timeout=60, headers=headers) as client:
        return client.get(f"/v1/tenants/{tenant}/agents", params=params)


def test_a_read_after_an_unknown_command_answers_at_once(system: str, tenant: str) -> None:
    """The attack's own requests: random command ids, more of them than the pool holds.
    Nobody accepted those commands, so there is nothing to wait for."""
    callers = [f"unknown-{i}" for i in range(3)]
    for caller in callers:
        bearer(caller, tenant, "viewer")  # sign in first, so that the reads start together
    count = len(callers) * WAITS_PER_CALLER
    assert count > POOL_SIZE
    with ThreadPoolExecutor(count) as pool:
        started = time.monotonic()
        answers = list(
            pool.map(
                lambda i: read(system, tenant, callers[i % 3], after_command=str(uuid.uuid4())),
                range(count),
            )
        )
        took = time.monotonic() - started
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["aion-consistency"] == "unknown-command"
    assert took < WAIT_S / 2, f"{count} reads after unknown commands took {took:.1f} s"


def test_another_tenants_command_is_as_unknown_as_none(system: str, tenant: str) -> None:
    with admin_client(system) as api:
        other = api.post(
            "/v1/tenants", json={"tenant_id": new_tenant_id(), "display_name": "O"}, headers=WAIT
        )
        decided(api, other)
        # Decided and in the read model: the platform admin may read after it...
        mine = api.get(f"/v1/tenants/{tenant}/agents", params=after(other))
        assert mine.headers["aion-consistency"] == "after-command"
    # ...but to a viewer of another tenant it is as unknown as a random id.
    theirs = read(system, tenant, "nosy", **after(other))
    assert theirs.status_code == 200, theirs.text
    assert theirs.headers["aion-consistency"] == "unknown-command"


def test_waiting_reads_hold_no_database_connection(system: str, tenant: str) -> None:
    """More reads wait than the pool has connections, and a plain read still answers at once:
    before all the waiting reads are over, not after the first of them gave its connection
    back."""
    callers = [f"waiting-{i}" for i in range(3)]
    for caller in callers:
        bearer(caller, tenant, "viewer")
    count = len(callers) * WAITS_PER_CALLER
    assert count > POOL_SIZE
    with ThreadPoolExecutor(count) as pool, admin_client(system) as api:
        waiting = [
            pool.submit(read, system, tenant, callers[i % 3], after=FAR) for i in range(count)
        ]
        time.sleep(1.5)  # every read has arrived and waits (each for WAIT_S)
        started = time.monotonic()
        plain = api.get(f"/v1/tenants/{tenant}")
        took = time.monotonic() - started
        over = [f for f in waiting if f.done()]
        answers = [f.result() for f in waiting]
    assert plain.status_code == 200, plain.text
    assert not over, [f.result().status_code for f in over]  # none ended before the plain read
    assert took < WAIT_S / 2, f"a plain read took {took:.1f} s behind {count} waiting reads"
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["aion-consistency"] == "stale"


def test_a_caller_may_have_only_so_many_reads_waiting(system: str, tenant: str) -> None:
    extra = 3
    bearer("greedy", tenant, "viewer")
    with ThreadPoolExecutor(WAITS_PER_CALLER + extra) as pool:
        futures = [
            pool.submit(read, system, tenant, "greedy", after=FAR)
            for _ in range(WAITS_PER_CALLER + extra)
        ]
        time.sleep(1.5)
        # The cap is the caller's: another viewer's read still waits (and answers stale).
        modest = read(system, tenant, "modest", after=FAR)
        answers = [f.result() for f in futures]
    assert modest.status_code == 200, modest.text
    assert modest.headers["aion-consistency"] == "stale"
    refused = [a for a in answers if a.status_code == 429]
    waited = [a for a in answers if a.status_code == 200]
    assert (len(refused), len(waited)) == (extra, WAITS_PER_CALLER), [
        a.status_code for a in answers
    ]
    for answer in refused:
        body = assert_problem(answer, 429, "after")
        assert body["type"].endswith("/too-many-waits")
        assert 1 <= int(answer.headers["retry-after"]) <= WAIT_S
    assert all(a.headers["aion-consistency"] == "stale" for a in waited)


def test_a_target_that_can_never_be_reached_is_refused(system: str, tenant: str) -> None:
    for params, field in (
        ({"after": "aion.nowhere:0:1"}, "after"),
        ({"after": f"{events_topic('task')}:0:{2**63}"}, "after"),
        ({"after": f"{events_topic('task')}:\u00b2:1"}, "after"),
        ({"after_command": "x\x00y"}, "after_command"),
        ({"after_command": "c" * 201}, "after_command"),
    ):
        assert_problem(read(system, tenant, "typo", **params), 422, field)
