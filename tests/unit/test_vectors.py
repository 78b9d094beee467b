"""The Qdrant read model against a real embedded Qdrant (qdrant-client's local mode on a folder).

The hashed embedder keeps these fast; one test runs the real MiniLM model through the store.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from commands.agent import DEPLOYED, RETIRED, UPDATED
from commands.task import ARTIFACT_STORED, RUN_SUCCEEDED
from projections import vectors
from projections.embedder import HashedEmbedder, embedder
from projections.vector_projection import VectorProjection, agent_text, output_text
from projections.vectors import (
    Entry,
    StoreLocked,
    VectorStore,
    open_client,
    open_store,
    point_id,
)

ACME, GLOBEX = "acme", "globex"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[VectorStore]:
    store = open_store(None, tmp_path / "qdrant", HashedEmbedder())
    yield store
    store.close()


def agent(name: str, version: int, text: str) -> Entry:
    return Entry("agent", name, version, text, fields={"agent_name": name})


def points(store: VectorStore) -> int:
    """Every point of every tenant: only a test may look past the tenant filter."""
    return store._client.count(store.collection).count


# --- the store -----------------------------------------------------------------------------


def test_point_ids_are_deterministic_and_unambiguous() -> None:
    assert point_id(ACME, "agent", "x") == point_id(ACME, "agent", "x")
    ids = {
        point_id(ACME, "agent", "x"),
        point_id(GLOBEX, "agent", "x"),
        point_id(ACME, "run_output", "x"),
        point_id("a/b", "agent", "c"),
        point_id("a", "agent", "b/c"),
    }
    assert len(ids) == 5


def test_writing_the_same_entry_twice_is_one_point(store: VectorStore) -> None:
    entry = agent("invoicer", 1, "extracts invoice totals")
    assert store.put(ACME, [entry]) == 1
    assert store.put(ACME, [entry]) == 0  # already there at this version: not even embedded
    assert points(store) == 1
    assert [h.entity_id for h in store.search(ACME, "invoice totals")] == ["invoicer"]


def test_an_older_version_never_replaces_a_newer(store: VectorStore) -> None:
    store.put(ACME, [agent("invoicer", 3, "extracts invoice totals")])
    store.put(ACME, [agent("invoicer", 2, "translates emails")])
    stored = store.get(ACME, "agent", "invoicer")
    assert stored is not None and stored.version == 3
    assert store.search(ACME, "translates emails")[0].version == 3


def test_the_guard_is_the_conditional_write_not_the_read_before_it(
    store: VectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when another process wrote between our read and our write (a server, a rebalance)."""
    store.put(ACME, [agent("invoicer", 3, "extracts invoice totals")])
    monkeypatch.setattr(store, "_versions", lambda ids: {})  # the read saw nothing yet
    assert store.put(ACME, [agent("invoicer", 2, "translates emails")]) == 1  # sent...
    stored = store.get(ACME, "agent", "invoicer")
    assert stored is not None and stored.version == 3  # ...and refused by Qdrant


def test_within_one_write_the_newest_version_of_an_entity_wins(store: VectorStore) -> None:
    store.put(ACME, [agent("a", 5, "five"), agent("a", 4, "four"), agent("b", 1, "bee")])
    stored = store.get(ACME, "agent", "a")
    assert stored is not None and stored.version == 5
    assert points(store) == 2


def test_search_finds_the_nearest_entity_best_first(store: VectorStore) -> None:
    store.put(
        ACME,
        [
            agent("invoicer", 1, "extracts totals from pdf invoices"),
            agent("translator", 1, "translates german emails into english"),
            agent("forecaster", 1, "forecasts electricity demand from weather"),
        ],
    )
    hits = store.search(ACME, "weather forecasts", limit=3)
    assert hits[0].entity_id == "forecaster"
    assert hits[0].fields == {"agent_name": "forecaster"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(store.search(ACME, "anything", limit=2)) == 2


def test_search_by_meaning_with_the_real_model(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "qdrant", embedder("minilm"))
    try:
        store.put(
            ACME,
            [
                agent("invoicer", 1, "Summarises PDF invoices and extracts the amount due."),
                agent("photos", 1, "Generates thumbnails and resizes uploaded product photos."),
                agent("fraud", 1, "Detects fraudulent credit card transactions."),
            ],
        )
        assert store.search(ACME, "spot stolen card payments")[0].entity_id == "fraud"
        assert store.search(ACME, "make smaller pictures")[0].entity_id == "photos"
    finally:
        store.close()


def test_search_is_filtered_by_kind(store: VectorStore) -> None:
    store.put(ACME, [agent("invoicer", 1, "invoice totals")])
    output = Entry("run_output", "run-1", 1, "invoice totals 42 EUR", fields={"run_id": "run-1"})
    store.put(ACME, [output])
    assert {h.kind for h in store.search(ACME, "invoice totals")} == {"agent", "run_output"}
    assert [h.kind for h in store.search(ACME, "invoice totals", kinds=["run_output"])] == [
        "run_output"
    ]
    with pytest.raises(ValueError, match="kinds"):
        store.search(ACME, "x", kinds=["tenant"])


def test_a_tenant_never_sees_another_tenants_points(store: VectorStore) -> None:
    store.put(ACME, [agent("shared-name", 1, "acme payroll secrets")])
    store.put(GLOBEX, [agent("shared-name", 1, "globex merger plans")])
    store.put(GLOBEX, [agent(f"g{i}", 1, f"globex thing {i}") for i in range(20)])
    assert points(store) == 22  # the same entity id in two tenants is two points
    for query in ("globex merger plans", "globex thing 3", "acme payroll secrets", ""):
        hits = store.search(ACME, query, limit=100)
        assert [(h.entity_id, h.fields["agent_name"]) for h in hits] == [
            ("shared-name", "shared-name")
        ]
    stored = store.get(ACME, "agent", "shared-name")
    assert stored is not None and stored.fields == {"agent_name": "shared-name"}
    assert store.get(ACME, "agent", "g3") is None
    for tenant in ("", "  "):
        with pytest.raises(ValueError, match="tenant"):
            store.search(tenant, "globex")


def test_retire_takes_the_entity_out_of_search_but_keeps_its_version(store: VectorStore) -> None:
    store.put(ACME, [agent("invoicer", 1, "invoice totals")])
    store.retire(ACME, "agent", "invoicer", 2, reason="replaced")
    assert store.search(ACME, "invoice totals") == []
    stored = store.get(ACME, "agent", "invoicer")
    assert stored is not None
    assert (stored.version, stored.status, stored.fields) == (
        2,
        vectors.RETIRED,
        {"reason": "replaced"},
    )
    store.put(ACME, [agent("invoicer", 1, "invoice totals")])  # a replayed older event
    assert store.search(ACME, "invoice totals") == []


def test_delete_removes_the_point(store: VectorStore) -> None:
    store.put(ACME, [agent("invoicer", 1, "invoice totals")])
    store.put(GLOBEX, [agent("invoicer", 1, "invoice totals")])
    store.delete(ACME, "agent", "invoicer")
    assert store.get(ACME, "agent", "invoicer") is None
    assert store.get(GLOBEX, "agent", "invoicer") is not None


def test_the_embedded_store_persists_and_is_locked_to_one_opener(tmp_path: Path) -> None:
    folder = tmp_path / "qdrant"
    store = open_store(None, folder, HashedEmbedder())
    store.put(ACME, [agent("invoicer", 4, "invoice totals")])
    with pytest.raises(StoreLocked, match="AION_QDRANT_URL"):
        open_client(None, folder)
    store.close()
    reopened = open_store(None, folder, HashedEmbedder())
    try:
        stored = reopened.get(ACME, "agent", "invoicer")
        assert stored is not None and stored.version == 4
    finally:
        reopened.close()


def test_searches_during_writes_from_another_thread(store: VectorStore) -> None:
    """In embedded mode the API's threads search while the projection's thread writes."""
    store.put(GLOBEX, [agent("other", 1, "invoice number")])
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(150):
                store.put(ACME, [agent(f"a{i}", 1, f"invoice number {i}")])
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    while writer.is_alive():
        assert all(h.fields["agent_name"] != "other" for h in store.search(ACME, "invoice"))
    writer.join()
    assert errors == []
    assert len(store.search(ACME, "invoice", limit=100)) == 100


# --- the projection --------------------------------------------------------------------------


class FakeS3:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.reads: list[str] = []

    def fetch(self, key: str) -> bytes:
        self.reads.append(key)
        return self.objects[key]  # KeyError (a LookupError) when it is gone


def event(aggregate: str, tenant: str, version: int, **fields: Any) -> dict[str, Any]:
    envelope = {"tenant_id": tenant, "aggregate_type": aggregate, "aggregate_version": version}
    return {"envelope": envelope, **fields}


def manifest(name: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"agent_name": name, "version": "1.0.0", "description": description, **extra}


def artifact(version: int, run: str, key: str, artifact_id: str = "output") -> dict[str, Any]:
    return event(
        "task",
        ACME,
        version,
        task_id="t1",
        run_id=run,
        artifact_id=artifact_id,
        digest=f"sha256:{key}",
        size_bytes=10,
        content_type="application/json",
        object_key=key,
    )


def succeeded(version: int, run: str, key: str, agent: str | None = None) -> dict[str, Any]:
    return event(
        "task",
        ACME,
        version,
        task_id="t1",
        run_id=run,
        output_digest=f"sha256:{key}",
        output_bytes=10,
        fuel_used=1,
        duration_ms=1,
        agent_name=agent,
    )


def test_agents_are_indexed_updated_and_retired(store: VectorStore) -> None:
    projection = VectorProjection(store, FakeS3({}).fetch)
    deployed = event(
        "agent",
        ACME,
        1,
        agent_name="invoicer",
        manifest=manifest(
            "invoicer",
            "extracts invoice totals",
            capabilities=["progress"],
            labels={"team": "finance"},
        ),
    )
    projection.apply(DEPLOYED, deployed)
    hit = store.search(ACME, "invoice totals")[0]
    assert (hit.entity_id, hit.version, hit.fields["labels"]) == (
        "invoicer",
        1,
        {"team": "finance"},
    )
    updated = event(
        "agent",
        ACME,
        2,
        agent_name="invoicer",
        manifest=manifest("invoicer", "translates weather reports"),
    )
    projection.apply(UPDATED, updated)
    projection.apply(DEPLOYED, deployed)  # redelivered after the update: ignored
    assert store.search(ACME, "weather reports")[0].fields["description"] == (
        "translates weather reports"
    )
    projection.apply(RETIRED, event("agent", ACME, 3, agent_name="invoicer", reason="done"))
    projection.apply(UPDATED, updated)  # redelivered after the retirement: ignored
    assert store.search(ACME, "weather reports") == []


def test_a_run_output_is_indexed_once_from_its_artifact_and_success(store: VectorStore) -> None:
    s3 = FakeS3({"k1": json.dumps({"summary": "invoice total is 42 EUR", "lines": 3}).encode()})
    projection = VectorProjection(store, s3.fetch)
    projection.apply(ARTIFACT_STORED, artifact(5, "run-1", "k1"))
    noted = store.get(ACME, "run_output", "run-1")
    assert noted is not None and noted.status == vectors.PENDING
    assert store.search(ACME, "invoice total") == []  # not searchable before the success
    projection.apply(RUN_SUCCEEDED, succeeded(6, "run-1", "k1"))
    hit = store.search(ACME, "invoice total", kinds=["run_output"])[0]
    assert (hit.entity_id, hit.version) == ("run-1", 6)
    assert hit.fields["excerpt"] == "summary: invoice total is 42 EUR; lines: 3"
    assert hit.fields["object_key"] == "k1" and hit.fields["task_id"] == "t1"
    # The whole stream again (a replay after a crash): no read, no change.
    projection.apply(ARTIFACT_STORED, artifact(5, "run-1", "k1"))
    projection.apply(RUN_SUCCEEDED, succeeded(6, "run-1", "k1"))
    assert s3.reads == ["k1"]
    assert store.search(ACME, "invoice total")[0].version == 6


def test_a_batch_indexes_its_outputs_together_and_notes_only_the_unfinished(
    store: VectorStore,
) -> None:
    objects = {
        "k1": b'{"summary": "invoice total is 42 EUR"}',
        "k2": b'{"summary": "weather is sunny"}',
        "k3": b'{"summary": "shipping label printed"}',
    }
    s3 = FakeS3(objects)
    projection = VectorProjection(store, s3.fetch)
    first = [
        (ARTIFACT_STORED, artifact(5, "run-1", "k1")),
        (RUN_SUCCEEDED, succeeded(6, "run-1", "k1")),
        (ARTIFACT_STORED, artifact(5, "run-2", "k2")),
        (RUN_SUCCEEDED, succeeded(6, "run-2", "k2")),
        (ARTIFACT_STORED, artifact(5, "run-3", "k3")),  # its success is in the next batch
    ]
    projection.apply_batch(first)
    assert store.search(ACME, "invoice total")[0].entity_id == "run-1"
    assert store.search(ACME, "sunny weather")[0].entity_id == "run-2"
    noted = store.get(ACME, "run_output", "run-3")
    assert noted is not None and noted.status == vectors.PENDING
    projection.apply_batch([(RUN_SUCCEEDED, succeeded(6, "run-3", "k3"))])
    assert store.search(ACME, "shipping label")[0].entity_id == "run-3"
    projection.apply_batch(first)  # a replay: nothing is read or changed
    assert s3.reads == ["k1", "k2", "k3"]
    assert store.get(ACME, "run_output", "run-1").version == 6  # type: ignore[union-attr]


def test_only_the_outputs_of_agents_that_opted_in_are_indexed(store: VectorStore) -> None:
    """An embedding costs more than the run (decision 52): ``index_outputs`` opts in."""
    objects = {k: b'{"summary": "invoice total is 42 EUR"}' for k in ("k1", "k2", "k3", "k4")}
    s3 = FakeS3(objects)
    projection = VectorProjection(store, s3.fetch)
    projection.apply_batch(
        [
            (DEPLOYED, event("agent", ACME, 1, agent_name="quiet",
                             manifest=manifest("quiet", "no search"))),
            (DEPLOYED, event("agent", ACME, 1, agent_name="loud",
                             manifest=manifest("loud", "search me", index_outputs=True))),
            (ARTIFACT_STORED, artifact(5, "run-1", "k1")),
            (RUN_SUCCEEDED, succeeded(6, "run-1", "k1", agent="quiet")),
            (ARTIFACT_STORED, artifact(5, "run-2", "k2")),
            (RUN_SUCCEEDED, succeeded(6, "run-2", "k2", agent="loud")),
            (ARTIFACT_STORED, artifact(5, "run-3", "k3")),  # succeeds in the next batch
        ]
    )  # fmt: skip
    assert store.get(ACME, "run_output", "run-1") is None  # no note left, no embedding
    assert store.get(ACME, "run_output", "run-2").status == vectors.INDEXED  # type: ignore[union-attr]
    projection.apply_batch([(RUN_SUCCEEDED, succeeded(6, "run-3", "k3", agent="quiet"))])
    assert store.get(ACME, "run_output", "run-3") is None  # its late note is removed
    assert s3.reads == ["k2"]
    # Another process (no memory of the deployments) reads the opt-in from the agent's point.
    fresh = VectorProjection(store, s3.fetch)
    fresh.apply(RUN_SUCCEEDED, succeeded(6, "run-4", "k4", agent="quiet"))
    assert fresh.indexes_outputs(ACME, "loud") and not fresh.indexes_outputs(ACME, "quiet")
    assert store.get(ACME, "run_output", "run-4") is None and s3.reads == ["k2"]


def test_outputs_that_cannot_be_indexed_are_skipped(store: VectorStore) -> None:
    s3 = FakeS3({})
    projection = VectorProjection(store, s3.fetch)
    projection.apply(RUN_SUCCEEDED, succeeded(2, "run-none", "k0"))  # no artifact recorded
    projection.apply(ARTIFACT_STORED, artifact(3, "run-gone", "k-gone"))
    projection.apply(RUN_SUCCEEDED, succeeded(4, "run-gone", "k-gone"))  # object missing
    projection.apply(ARTIFACT_STORED, artifact(5, "run-logs", "k-logs", artifact_id="logs"))
    assert s3.reads == ["k-gone"]
    assert store.get(ACME, "run_output", "run-none") is None
    assert store.get(ACME, "run_output", "run-logs") is None
    assert store.search(ACME, "anything") == []


def test_an_s3_outage_propagates_so_the_batch_is_retried(store: VectorStore) -> None:
    def broken(key: str) -> bytes:
        raise ConnectionError("S3 down")

    projection = VectorProjection(store, broken)
    projection.apply(ARTIFACT_STORED, artifact(1, "run-1", "k1"))
    with pytest.raises(ConnectionError):
        projection.apply(RUN_SUCCEEDED, succeeded(2, "run-1", "k1"))
    noted = store.get(ACME, "run_output", "run-1")
    assert noted is not None and noted.status == vectors.PENDING  # still waiting for the retry


def test_other_records_change_nothing(store: VectorStore) -> None:
    projection = VectorProjection(store, FakeS3({}).fetch)
    projection.apply("aion.CommandRejected", event("agent", ACME, 1, command_type="x"))
    projection.apply("aion.task.TaskSubmitted", event("task", ACME, 1, task_id="t1"))
    assert points(store) == 0
    assert projection.name == "vectors.hashed-trigrams-384"
    assert projection.topics == ("aion.events.agent", "aion.events.task")


def test_agent_text_reads_like_a_sentence() -> None:
    text = agent_text(
        manifest(
            "pdf-invoicer",
            "Extracts totals.",
            capabilities=["model_inference"],
            labels={"team": "finance", "cost": "low"},
        )
    )
    assert text == (
        "pdf invoicer. Extracts totals. capabilities: model inference."
        " labels: cost low, team finance"
    )


def test_output_text_flattens_json_and_stays_bounded() -> None:
    assert output_text(b'{"a": "x y", "b": [1, true, null]}') == "a: x y; b: 1, true, null"
    assert output_text(b"plain words \xff here") == "plain words \ufffd here"
    assert output_text(b'{"cut": "off') == '{"cut": "off'  # a prefix of JSON is text
    assert len(output_text(json.dumps({"k": "word " * 10_000}).encode())) <= 2000
    assert output_text(b"[" * 50 + b'"too deep"' + b"]" * 50) == ""  # read 20 levels at most
    assert len(output_text(b"[" * 5000 + b"]" * 5000)) == 2000  # beyond json's recursion: text
