"""A poison message in the middle of a stream: dead-lettered, and the stream goes on.

Then the operator's tools: `aion dlq list`, `replay` (back to the source; it fails again, so it
comes back) and `purge`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
from confluent_kafka import Producer

from aion.settings import Settings
from schemas.topics import COMMANDS, producer_config
from streams.deadletter_tools import list_dead_letters
from tests.conftest import ROOT
from tests.stack.test_tenants_api import new_tenant_id


def aion(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aion", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def letters_for(settings: Settings, key: str, at_least: int, timeout: float = 30) -> list:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        found = [d for d in list_dead_letters(settings.kafka) if d.key == key]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_a_poison_command_is_dead_lettered_and_the_stream_goes_on(
    api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant_id()
    producer = Producer(producer_config(settings.kafka))
    producer.produce(COMMANDS, key=tenant.encode(), value=b"\x00\xff not avro at all")
    producer.flush(10)
    # The next command in the same partition (same key) is still decided.
    created = api.post("/v1/tenants?wait=20", json={"tenant_id": tenant, "display_name": "After"})
    assert created.status_code == 201, created.text

    [letter] = letters_for(settings, tenant, 1)
    assert letter.source_topic == COMMANDS
    assert letter.source_offset >= 0
    assert "DecodeError" in letter.error

    listed = aion("dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert letter.position in {d["position"] for d in json.loads(listed.stdout)}

    replayed = aion("dlq", "replay", letter.position)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 dead letter(s)" in replayed.stderr
    assert len(letters_for(settings, tenant, 2)) == 2  # still poison: back in the dead letters

    purged = aion("dlq", "purge", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert list_dead_letters(settings.kafka) == []
    assert api.get(f"/v1/tenants/{tenant}").json()["display_name"] == "After"
