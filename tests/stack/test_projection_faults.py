"""A projection's faults: it retries, says so in /readyz, and dead-letters what it cannot apply
(issue 17, finding 13).

It used to die on its first error: a Postgres restart left the projector gone for good, the
read model frozen (a revoked API key stayed valid) and /readyz green. Here the projector's
Postgres connections are cut and it is kept from reconnecting (its own role made NOLOGIN, its
backends terminated: the shared server stays up for everyone else), then let back in.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from aion.settings import Settings
from aion.stack.manager import Stack
from projections.runner import PING_IDLE_S, Position, ProjectionRunner
from schemas.codec import Codec
from schemas.topics import events_topic, producer_config
from streams.deadletter_tools import list_dead_letters
from tests.conftest import AionProcesses
from tests.stack.test_read_model_guards import rejected
from tests.stack.test_tenants_api import new_tenant_id

ROLE = "aion_fault_projector"


def eventually(check: Callable[[], Any], timeout: float = 90, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.3)


def admin(settings: Settings, statement: str) -> None:
    with psycopg.connect(settings.database, autocommit=True) as conn:
        conn.execute(statement)


def cut_off(settings: Settings) -> int:
    """The role may not log in, and its sessions end: the projector loses Postgres alone."""
    admin(settings, f"alter role {ROLE} nologin")
    with psycopg.connect(settings.database, autocommit=True) as conn:
        rows = conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where usename = %s", (ROLE,)
        ).fetchall()
    return len(rows)


@pytest.fixture()
def fault_projector(processes: AionProcesses, settings: Settings) -> Iterator[AionProcesses]:
    """The projector, connected as a role of its own (a member of aion: same rights)."""
    admin(
        settings,
        f"do $$ begin if not exists (select from pg_roles where rolname = '{ROLE}') then "
        f"create role {ROLE} login; end if; end $$",
    )
    admin(settings, f"grant aion to {ROLE}")
    admin(settings, f"alter role {ROLE} login")
    url = settings.database.replace("//aion@", f"//{ROLE}@")
    assert url != settings.database
    processes.stop_role("projector")
    # A database URL of its own makes Postgres "external": the refusal to start with the
    # development defaults then applies, and this is a development stack on purpose.
    processes.start_role("projector", AION_DATABASE_URL=url, AION_INSECURE_DEV="1")
    try:
        yield processes
    finally:
        admin(settings, f"alter role {ROLE} login")
        processes.stop_role("projector")
        processes.start_role("projector")


def projected(api: httpx.Client, tenant: str) -> bool:
    return api.get(f"/v1/tenants/{tenant}").status_code == 200


def ready(system: str) -> httpx.Response:
    return httpx.get(f"{system}/readyz", timeout=30)


def core_state(response: httpx.Response) -> str | None:
    state = (response.json().get("projections") or {}).get("core")
    return state.get("state") if isinstance(state, dict) else None


def test_the_projector_outlives_losing_postgres_says_so_and_catches_up(
    fault_projector: AionProcesses, api: httpx.Client, settings: Settings
) -> None:
    system = fault_projector.base
    projector = fault_projector.procs["projector"]

    def reporting() -> bool:
        fault_projector.check_alive()
        return core_state(ready(system)) == "running"

    eventually(reporting, what="the projector reports")
    before = new_tenant_id()
    created = api.post("/v1/tenants?wait=20", json={"tenant_id": before, "display_name": "B"})
    assert created.status_code == 201, created.text
    eventually(lambda: api.get(f"/v1/tenants/{before}").status_code == 200, what="projected")

    assert cut_off(settings) >= 1  # the projector's connections, and only its own
    during = [new_tenant_id() for _ in range(3)]
    for tenant in during:
        created = api.post("/v1/tenants", json={"tenant_id": tenant, "display_name": "During"})
        assert created.status_code == 202, created.text

    def failing() -> httpx.Response | None:
        response = ready(system)
        return response if response.status_code == 503 else None

    not_ready = eventually(failing, what="/readyz names the projection")
    problem = not_ready.json()
    assert "projection core" in problem["failed"], problem
    assert problem["projections"]["core"]["state"] == "retrying"
    assert problem["checks"]["projection core"].startswith("retrying since"), problem["checks"]
    assert problem["checks"]["postgres"] == "ok"  # the API's own Postgres is fine
    assert api.get(f"/v1/tenants/{during[0]}").status_code == 404  # not projected meanwhile
    time.sleep(3)  # a few retries
    assert projector.poll() is None, "the projector died"

    admin(settings, f"alter role {ROLE} login")
    eventually(lambda: ready(system).status_code == 200, what="/readyz green again")
    for tenant in during:  # what was decided meanwhile is projected, nothing skipped
        eventually(functools.partial(projected, api, tenant), what=tenant)
    assert core_state(ready(system)) == "running"
    assert projector.poll() is None


class Picky:
    """A projection that cannot apply the event of aggregate ``<tenant>/poison``."""

    def __init__(self, topic: str) -> None:
        self.name = f"test-poison-{uuid.uuid4().hex[:8]}"
        self.topics: tuple[str, ...] = (topic,)
        self.applied: set[int] = set()

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        if value["envelope"]["aggregate_id"].endswith("/poison"):
            raise ValueError("this event cannot be projected")
        cur.execute("select 1")
        self.applied.add(at.offset)


def test_an_event_that_cannot_be_projected_goes_to_the_dead_letters(
    stack: Stack, settings: Settings
) -> None:
    topic = f"aion.test.poison-{uuid.uuid4().hex[:8]}"
    kafka_admin = AdminClient({"bootstrap.servers": settings.kafka})  # held: futures need it
    kafka_admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    codec = Codec(settings.registry)

    def event(local_id: str) -> bytes:  # bytes of a real events topic, decoded by schema id
        name, value = rejected("t-poison", "tenant", local_id, 1)
        return codec.encode(events_topic("tenant"), name, value)

    producer = Producer(producer_config(settings.kafka))
    for value in (event("good-1"), event("poison"), b"not avro at all", event("good-2")):
        producer.produce(topic, key=b"t-poison", value=value)
    assert producer.flush(30) == 0

    projection = Picky(topic)
    runner = ProjectionRunner(
        projection, kafka=settings.kafka, database_url=settings.database, codec=codec
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:

        def past(end: int) -> bool:
            with psycopg.connect(settings.database) as conn:
                row = conn.execute(
                    "select next_offset from projection_checkpoints where projection = %s",
                    (projection.name,),
                ).fetchone()
            return row is not None and row[0] == end

        eventually(lambda: past(4), 60, "the projection went past the poison")
        assert thread.is_alive() and runner.health.state == "running"
        # Idle long enough to check its connection, it still commits what comes next.
        time.sleep(PING_IDLE_S + 1)
        producer.produce(topic, key=b"t-poison", value=event("good-3"))
        assert producer.flush(30) == 0
        eventually(lambda: past(5), 60, "an event after an idle check is committed")
    finally:
        runner.stop()
        thread.join(30)
        with psycopg.connect(settings.database) as conn:
            conn.execute(
                "delete from projection_checkpoints where projection = %s", (projection.name,)
            )
    assert projection.applied == {0, 3, 4}
    letters = eventually(
        lambda: [d for d in list_dead_letters(settings.kafka) if d.source_topic == topic],
        what="dead letters",
    )
    by_offset = {d.source_offset: d for d in letters}
    assert sorted(d.source_offset for d in letters) == [1, 2], letters  # each one once
    assert "ValueError: this event cannot be projected" in by_offset[1].error
    assert "DecodeError" in by_offset[2].error
    assert runner.health.dead_letters == 2
    kafka_admin.delete_topics([topic])[topic].result(30)
