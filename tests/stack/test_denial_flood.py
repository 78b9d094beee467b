"""Issue 17, finding 3: a foreign tenant's admin floods a victim tenant's path.

It used to write one `AccessDenied` per request into the victim's audit log (kept forever), and
to spend the victim tenant's rate bucket, since the gate took the bucket of the tenant the path
named before it authorized. Here the attack runs against an API of its own with real limits
(a small tenant burst, a short denial window), on the session's stack: the victim's log gets a
bounded number of counted entries whose counts add up to the refusals, the victim's bucket is
never touched and its own caller is not throttled, and a caller that sprays many tenants
overflows into its own tenant's log.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import TopicPartition
from psycopg.rows import dict_row
from redis import Redis

from aion.settings import Settings
from api.audit_events import ACCESS_DENIED
from api.denials import AGGREGATES_PER_CALLER, OVERFLOW_ACTION
from schemas.codec import Codec
from schemas.topics import AUDIT
from tests.conftest import ROOT, AionProcesses
from tests.stack.identity import admin_client, bearer
from tests.stack.kafka_reading import reader
from tests.stack.test_tenants_api import new_tenant_id

TENANT_BURST = 40  # the limited API's tenant bucket: the attacker's own tenant runs dry first
WINDOW_S = 4.0  # its denial window: the counted entries come within seconds
ATTACK = 120  # requests the foreign admin sends
WAIT = {"Prefer": "wait=20"}


@contextmanager
def api_with_limits(processes: AionProcesses, root: Path = ROOT, **env: str) -> Iterator[str]:
    """A second API on the same stack (code from ``root``), with a tenant limit low enough to
    run dry (the session's API has its limits raised out of the way) and a short denial
    window; yields its base URL."""
    limits = {
        "AION_RATE_TENANT_PER_S": "0.001",
        "AION_RATE_TENANT_BURST": str(TENANT_BURST),
        "AION_RATE_CALLER_PER_S": "100000",
        "AION_RATE_CALLER_BURST": "100000",
        "AION_AUDIT_DENIAL_WINDOW_S": str(WINDOW_S),
    }
    with processes.extra_api("serve-limited", root, **{**limits, **env}) as base:
        yield base


@pytest.fixture(scope="module")
def limited_api(processes: AionProcesses) -> Iterator[str]:
    with api_with_limits(processes) as base:
        yield base


def create_tenant(system: str) -> str:
    tenant = new_tenant_id()
    with admin_client(system) as api:
        body = {"tenant_id": tenant, "display_name": "Flooded"}
        assert api.post("/v1/tenants", json=body, headers=WAIT).status_code in (201, 202)
    return tenant


def wait_until_readable(system: str, tenant: str) -> None:
    """Until the read model has the tenant (a busy worker may take longer than a wait)."""
    deadline = time.monotonic() + 120
    with admin_client(system) as api:
        while api.get(f"/v1/tenants/{tenant}").status_code != 200:
            assert time.monotonic() < deadline, f"tenant {tenant} not in the read model in 120 s"
            time.sleep(0.5)


def denials_written(settings: Settings, subject: str, refusals: int) -> list[dict[str, Any]]:
    """The AccessDenied records of ``subject`` on `aion.audit` (the log itself), read until
    their counts reach ``refusals`` (the sweeper writes a window's count once it is over) or
    for 30 s; each as {"tenant_id", "detail": {...the record...}}, oldest first."""
    codec = Codec(settings.registry)
    consumer = reader(settings)
    found: list[dict[str, Any]] = []
    try:
        partitions = consumer.list_topics(AUDIT, timeout=10).topics[AUDIT].partitions
        consumer.assign([TopicPartition(AUDIT, p, 0) for p in partitions])
        deadline = time.monotonic() + 30
        while counted(found) < refusals and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            data = None if message is None or message.error() else message.value()
            if data is None:
                continue
            name, value = codec.decode(AUDIT, data)
            if name == ACCESS_DENIED and value["subject"] == subject:
                tenant = value["envelope"]["tenant_id"]
                found.append({"tenant_id": tenant, "detail": value})
    finally:
        consumer.close()
    return sorted(found, key=lambda r: r["detail"]["envelope"]["occurred_at"])


def projected(settings: Settings, actor: str, refusals: int) -> list[dict[str, Any]]:
    """The audit_log rows of ``actor``'s denials, once the projector has them all (or 90 s)."""
    deadline = time.monotonic() + 90
    while True:
        with psycopg.connect(settings.database, row_factory=dict_row) as conn:
            rows = conn.execute(
                "select tenant_id, detail from audit_log"
                " where kind = 'denial' and actor = %s order by occurred_at",
                (actor,),
            ).fetchall()
        if counted(rows) >= refusals or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def counted(rows: list[dict[str, Any]]) -> int:
    return sum(int(r["detail"]["count"]) for r in rows)


def test_a_foreign_admins_flood_is_counted_in_few_entries_and_costs_the_victim_nothing(
    system: str, limited_api: str, settings: Settings
) -> None:
    victim = create_tenant(system)
    attacker_tenant = new_tenant_id()  # its admin's token names it; it need not exist
    attacker = f"mallory-{uuid.uuid4().hex[:8]}"
    path = f"/v1/tenants/{victim}/agents"
    started = time.monotonic()
    with httpx.Client(
        base_url=limited_api, timeout=30, headers=bearer(attacker, attacker_tenant, "admin")
    ) as client:
        answers = [client.get(path) for _ in range(ATTACK)]
    attack_s = time.monotonic() - started
    statuses = [a.status_code for a in answers]
    refused = statuses.count(403)
    # The attacker pays with its own tenant's bucket: its burst is all that reaches Cedar.
    assert set(statuses) == {403, 429}, statuses
    assert TENANT_BURST <= refused <= TENANT_BURST + 2, statuses
    limited = answers[-1]
    assert limited.status_code == 429 and "the tenant rate limit" in limited.json()["detail"]

    # The victim's bucket was never taken from.
    redis = Redis.from_url(settings.redis)
    try:
        assert not redis.exists(f"aion:rate:tenant:{victim}")
    finally:
        redis.close()

    # The victim's log: a few entries whose counts add up to every refusal.
    rows = denials_written(settings, attacker, refused)
    assert counted(rows) == refused
    assert {r["tenant_id"] for r in rows} == {victim}
    windows = attack_s / WINDOW_S + 1
    assert len(rows) <= 2 * (windows + 1), (len(rows), attack_s)  # two at most per window
    assert len(rows) < refused / 4
    assert rows[0]["detail"]["count"] == 1  # the window's first refusal, written at once
    for row in rows:
        detail = row["detail"]
        assert detail["action"] == "GET /v1/tenants/{tenant}/agents" and detail["status"] == 403
        assert detail["path"] == path and detail["roles"] == ["admin"]
        assert detail["first_at"] <= detail["last_at"]

    # The victim's own caller is not throttled (on the old code its bucket was empty: 429).
    wait_until_readable(system, victim)
    with httpx.Client(
        base_url=limited_api, timeout=30, headers=bearer("vera", victim, "viewer")
    ) as own:
        mine = [own.get(path).status_code for _ in range(10)]
    assert mine == [200] * 10

    # The same log as projected, and through the API.
    assert counted(projected(settings, attacker, refused)) == refused
    with admin_client(system) as api:
        listed = api.get(f"/v1/tenants/{victim}/audit", params={"kind": "denial"})
    assert listed.status_code == 200, listed.text
    assert sum(i["detail"]["count"] for i in listed.json()["items"]) == refused


def test_a_caller_spraying_many_tenants_overflows_into_its_own_tenants_log(
    system: str, limited_api: str, settings: Settings
) -> None:
    home = new_tenant_id()  # the sprayer's own tenant, as its token names it
    sprayer = f"spray-{uuid.uuid4().hex[:8]}"
    targets = [new_tenant_id() for _ in range(AGGREGATES_PER_CALLER + 10)]
    with httpx.Client(
        base_url=limited_api, timeout=30, headers=bearer(sprayer, home, "admin")
    ) as client:
        statuses = [client.get(f"/v1/tenants/{t}/models").status_code for t in targets]
    assert statuses == [403] * len(targets)

    rows = denials_written(settings, sprayer, len(targets))
    assert counted(rows) == len(targets)
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_tenant.setdefault(row["tenant_id"], []).append(row)
    # The first ones each have their own entry; the rest are counted in the caller's own log.
    assert set(by_tenant) == {*targets[:AGGREGATES_PER_CALLER], home}
    assert all(counted(by_tenant[t]) == 1 for t in targets[:AGGREGATES_PER_CALLER])
    overflow = by_tenant[home]
    assert counted(overflow) == 10 and len(overflow) <= 2
    assert {r["detail"]["action"] for r in overflow} == {OVERFLOW_ACTION}
    assert overflow[-1]["detail"]["path"] == f"/v1/tenants/{targets[-1]}/models"
