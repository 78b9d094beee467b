"""One caller cannot pin the API's Redis with live streams (issue 17, finding 14).

Each SSE stream holds a Redis connection in a blocking XREAD for as long as its task runs; a
caller used to be able to open them without limit. The attack: one viewer opens streams on a
task that never ends, one more than its cap. The extra one is a 429 problem with Retry-After,
another caller still streams, and a closed stream gives its slot back.
"""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack

import httpx
import redis

from aion.settings import Settings
from projections.live import status_key
from tests.stack.identity import bearer
from tests.stack.test_orchestration import new_tenant

EVENTS = "/v1/tenants/{tenant}/tasks/{task}/events"


def open_stream(stack: ExitStack, client: httpx.Client, path: str) -> httpx.Response:
    """A stream whose headers have arrived, held open until ``stack`` closes."""
    return stack.enter_context(client.stream("GET", path, timeout=30))


def test_a_caller_past_its_stream_cap_gets_429_and_others_still_stream(
    api: httpx.Client, system: str, settings: Settings
) -> None:
    cap = Settings().sse_streams_per_caller
    tenant = new_tenant(api)
    task = "held-open"
    key = status_key(tenant, task)
    client = redis.Redis.from_url(settings.redis)
    client.hset(key, mapping={"version": 1, "status": "submitted"})  # never finishes
    path = EVENTS.format(tenant=tenant, task=task)
    mallory = httpx.Client(
        base_url=system, headers=bearer(f"m-{uuid.uuid4().hex}", tenant, "viewer")
    )
    alice = httpx.Client(base_url=system, headers=bearer(f"a-{uuid.uuid4().hex}", tenant, "viewer"))
    try:
        with ExitStack() as held:
            streams = [open_stream(held, mallory, path) for _ in range(cap)]
            assert [s.status_code for s in streams] == [200] * cap

            refused = mallory.get(path, timeout=30)
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"].endswith("/too-many-streams")
            assert int(refused.headers["Retry-After"]) > 0

            with ExitStack() as other:
                assert open_stream(other, alice, path).status_code == 200

            streams[0].close()  # one of mallory's streams ends: its slot comes back
            status = 0
            deadline = time.monotonic() + 30
            while status != 200 and time.monotonic() < deadline:
                with ExitStack() as again:
                    status = open_stream(again, mallory, path).status_code
                if status != 200:
                    time.sleep(0.5)
            assert status == 200
    finally:
        mallory.close()
        alice.close()
        client.delete(key)
        client.close()
