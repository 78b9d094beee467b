"""The write model folded again from the events (issue 17, finding 8): the rebuilt documents
hold what the command processor stored, and a rebuilt tenant decides what the original would
have decided next (its queue, slots, retries, watchdogs and policies included)."""

from __future__ import annotations

import json
from typing import Any

from streams.plan import Plan
from streams.rebuild_state import documents, fold
from tests.unit.planning import (
    Store,
    deploy,
    failed,
    put_policy,
    report,
    submit,
    succeeded,
    task_status,
    tenant,
    tick,
)
from tests.unit.planning import records as names

GRACE_MS = 1000


class Recording(Store):
    """A store that keeps every event its plans emitted, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, dict[str, Any]]] = []

    def run(
        self, command_type: str, aggregate_id: str, payload: dict[str, Any], **env: Any
    ) -> Plan:
        plan = super().run(command_type, aggregate_id, payload, **env)
        self.events += [
            (e.record, e.value) for e in plan.emissions if e.topic.startswith("aion.events.")
        ]
        return plan


def rebuilt_from(original: Recording) -> Store:
    """A store holding only what the original's events rebuild, at the original's clock."""
    # Every event twice: the duplicates at-least-once leaves are dropped by version.
    rebuilt = documents(fold(original.events + original.events), original.now, GRACE_MS)
    store = Store()
    store.now, store.count = original.now, original.count
    tables = {**rebuilt.aggregates, **rebuilt.schedulers, **rebuilt.tasks}
    for key, (_, document) in tables.items():
        store.documents[key] = json.dumps(document)
    for key, document in rebuilt.facts.items():  # the harness has one task partition
        store.documents[key] = json.dumps(document)
    return store


def emitted(plan: Plan) -> list[tuple[str, str, Any]]:
    return [(e.record, e.key, e.value) for e in plan.emissions]


def busy_tenant() -> Recording:
    """One slot: t-1 running, t-2 and t-3 queued; another agent's t-4 waiting for a retry."""
    store = Recording()
    tenant(store, max_concurrent_tasks=2)
    deploy(store)
    deploy(store, "flaky", max_retries=1, retry_backoff_ms=60_000)
    put_policy(store, "allow-all", "permit(principal, action, resource);")
    submit(store, "t-4", agent="flaky")
    failed(store, "t-4")  # retried in a minute
    for task_id in ("t-1", "t-2", "t-3"):
        submit(store, task_id)
    report(store, "RunStarted", "t-1", attempt=1, worker="w")
    return store


def test_the_rebuilt_documents_hold_what_the_processor_stored() -> None:
    original = busy_tenant()
    rebuilt = rebuilt_from(original)
    for key, raw in original.documents.items():
        if key.split(":", 1)[0] in ("tenant", "agent", "task", "policy", "policies"):
            assert json.loads(rebuilt.documents[key])["state"] == json.loads(raw)["state"], key
    for key in ("tenant:acme", "task:acme/t-1"):
        # Admission's internal commands (ScheduleRun) end in no outcome event, so no rebuilt
        # list names them; a redelivered one finds its work done (decision 56).
        recent = json.loads(original.documents[key])["recent"]
        outcomes = [command_id for command_id in recent if command_id.startswith("cmd-")]
        assert json.loads(rebuilt.documents[key])["recent"] == outcomes
    scheduler = json.loads(rebuilt.documents["scheduler:acme"])["state"]
    kept = json.loads(original.documents["scheduler:acme"])["state"]
    for counter in ("queued", "active", "retrying"):
        assert scheduler[counter] == kept[counter], counter


def test_a_rebuilt_tenant_decides_what_the_original_would_have() -> None:
    original = busy_tenant()
    rebuilt = rebuilt_from(original)
    # The last command (t-1's RunStarted), redelivered, is still recognised as handled.
    payload = {"task_id": "t-1", "run_id": "t-1.1", "attempt": 1, "worker": "w"}
    last = f"cmd-{original.count}"
    for store in (original, rebuilt):
        assert store.run(
            "aion.run.RecordRunStarted", "acme/t-1", payload, command_id=last
        ).duplicate
    # Time passes: t-4's retry comes due, and t-1's silent run is given up by its watchdog (the
    # rebuilt one counts its silence from the rebuild: the same events, other durations).
    later = original.now + 61_000
    plan = tick(original, later)
    assert {"RunFailed", "TaskFailed", "TaskScheduled"} <= set(names(plan))
    assert names(tick(rebuilt, later)) == names(plan)
    for task_id in ("t-2", "t-3", "t-4"):
        assert task_status(rebuilt, task_id) == task_status(original, task_id), task_id
    assert emitted(succeeded(rebuilt, "t-2")) == emitted(succeeded(original, "t-2"))
