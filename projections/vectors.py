"""The Qdrant read model: one point per (tenant, kind, entity), written only when newer.

One collection per embedder (vectors of two models cannot be compared), named after it; every
kind of entity lives in it, told apart by a ``kind`` payload, and every point carries its
``tenant_id`` (indexed as Qdrant's tenant key on a server): Qdrant's advice for many tenants
is one collection filtered by tenant, not a collection per tenant.

Idempotence: a point's id is uuid5 of (tenant, kind, entity id), so the same entity is always
the same point and a repeated write replaces instead of adding.

Version guard: the payload carries the aggregate version of the event that wrote the point,
and every write is a conditional upsert (``update_filter``: replace only where the stored
version is older; a point not there yet is inserted). Reading the version and then writing
would race on a server: during a Kafka rebalance the partition's old owner may still be
writing while the new owner replays from its checkpoint, and the older write could land
last. Qdrant evaluates the condition and writes in the same update operation (servers from
1.16; local mode too), so the newest version wins in any order. The read before the write in
``put`` only skips the embedding of stale entries; it decides nothing.

Tenant isolation: the client is private; every read takes the tenant as a required argument
and builds a must-filter from it, and no method accepts a filter or a raw point id.

A point without a vector (a retired agent, a run output not yet known to have succeeded)
keeps its version and payload, so the guard still works, but no search can return it.

Embedded mode: ``QdrantClient(path=...)`` locks its folder to one process. Only the process
that serves search may open it, so without ``AION_QDRANT_URL`` the Qdrant projection must run
in that process too; with a URL any process may (see ``open_store``).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as q

from projections.embedder import Embedder

log = logging.getLogger(__name__)

KINDS = ("agent", "run_output")
VECTOR = "text"
INDEXED, RETIRED, PENDING = "indexed", "retired", "pending"
RESERVED = ("tenant_id", "kind", "entity_id", "version", "status")
MAX_LIMIT = 100
# Fixed forever: changing it would move every point.
NAMESPACE = uuid.UUID("5d1f3c52-4a8e-5b7e-9a53-6f0e7c2a9b11")


@dataclass(frozen=True)
class Entry:
    """What to store for one entity. Without text the point is kept out of search."""

    kind: str
    entity_id: str
    version: int
    text: str | None
    status: str = INDEXED
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stored:
    kind: str
    entity_id: str
    version: int
    status: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Hit:
    kind: str
    entity_id: str
    score: float
    version: int
    fields: dict[str, Any]


class StoreLocked(RuntimeError):
    """Another process holds the embedded Qdrant folder."""


def point_id(tenant_id: str, kind: str, entity_id: str) -> str:
    """Deterministic: JSON keeps ("a/b", "c") and ("a", "b/c") apart."""
    return str(uuid.uuid5(NAMESPACE, json.dumps([tenant_id, kind, entity_id])))


def collection_name(embedder: Embedder) -> str:
    return f"aion-{embedder.name}"


def open_client(url: str | None, path: str | Path) -> QdrantClient:
    """A Qdrant server when a URL is given, else the embedded local mode in ``path``."""
    if url:
        return QdrantClient(url=url)
    Path(path).mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" not in str(exc):
            raise
        raise StoreLocked(
            f"the embedded Qdrant in {path} is open in another process: search and the Qdrant"
            " projection must run in one process, or set AION_QDRANT_URL to a server"
        ) from exc


def open_store(url: str | None, path: str | Path, embedder: Embedder) -> VectorStore:
    """The store and its collection. From settings: ``open_store(settings.qdrant_url,
    settings.qdrant_location, embedder(settings.embedder))``."""
    store = VectorStore(open_client(url, path), embedder)
    store.ensure_collection()
    return store


class VectorStore:
    def __init__(self, client: QdrantClient, embedder: Embedder) -> None:
        self._client = client
        # Local mode's in-memory arrays are not safe for a search during an upsert; the API's
        # threads and the projection's share one store in embedded mode. Embedding stays outside.
        self._lock = threading.Lock()
        self.embedder = embedder
        self.collection = collection_name(embedder)

    def ensure_collection(self) -> None:
        if not self._client.collection_exists(self.collection):
            try:
                self._client.create_collection(
                    self.collection,
                    vectors_config={
                        VECTOR: q.VectorParams(
                            size=self.embedder.dimensions, distance=q.Distance.COSINE
                        )
                    },
                )
            except Exception:
                if not self._client.collection_exists(self.collection):
                    raise  # else another process created it first
            self._index_payload()
        size = self._vector_size()
        if size != self.embedder.dimensions:
            raise RuntimeError(
                f"collection {self.collection} holds {size}-dimensional vectors,"
                f" the embedder makes {self.embedder.dimensions}"
            )

    def _index_payload(self) -> None:
        indexes: dict[str, q.PayloadSchemaType | q.KeywordIndexParams] = {
            "tenant_id": q.KeywordIndexParams(type=q.KeywordIndexType.KEYWORD, is_tenant=True),
            "kind": q.PayloadSchemaType.KEYWORD,
            "status": q.PayloadSchemaType.KEYWORD,
            "version": q.PayloadSchemaType.INTEGER,
        }
        with warnings.catch_warnings():
            # Local mode has no payload indexes and says so; a server needs them.
            warnings.filterwarnings("ignore", "Payload indexes have no effect", UserWarning)
            for name, schema in indexes.items():
                self._client.create_payload_index(self.collection, name, schema)

    def _vector_size(self) -> int:
        vectors = self._client.get_collection(self.collection).config.params.vectors
        assert isinstance(vectors, dict), "the collection has one named vector"
        return int(vectors[VECTOR].size)

    # --- writes ---------------------------------------------------------------------------------

    def put(self, tenant_id: str, entries: Iterable[Entry]) -> int:
        """Write each entry unless its point already has this version or a newer one.

        Returns how many entries were sent (a concurrent newer write may still win).
        """
        _check_tenant(tenant_id)
        newest: dict[str, Entry] = {}
        for entry in entries:
            _check_kinds([entry.kind])
            pid = point_id(tenant_id, entry.kind, entry.entity_id)
            if pid not in newest or newest[pid].version < entry.version:
                newest[pid] = entry  # one request must not carry two versions of a point
        stored = self._versions(list(newest))
        todo = {p: e for p, e in newest.items() if stored.get(p, -1) < e.version}
        if not todo:
            return 0
        texts = [(p, e.text) for p, e in todo.items() if e.text is not None]
        embedded = self.embedder.embed([t for _, t in texts])
        vectors = dict(zip([p for p, _ in texts], embedded, strict=True))
        points = [
            q.PointStruct(
                id=pid,
                vector={VECTOR: vectors[pid]} if pid in vectors else {},
                payload={**entry.fields, **_reserved(tenant_id, entry)},
            )
            for pid, entry in todo.items()
        ]
        with self._lock:
            self._client.upsert(self.collection, points, update_filter=_older_than(todo))
        return len(points)

    def retire(self, tenant_id: str, kind: str, entity_id: str, version: int, **fields: Any) -> int:
        """Keep the point (and its version) but drop its vector: search no longer finds it."""
        return self.put(tenant_id, [Entry(kind, entity_id, version, None, RETIRED, fields)])

    def delete(self, tenant_id: str, kind: str, entity_id: str) -> None:
        """Remove the point outright (erasure). Unlike ``retire`` it leaves no version behind,
        so a replayed older event would bring the entity back: not for event handling."""
        _check_tenant(tenant_id)
        _check_kinds([kind])
        selector = q.PointIdsList(points=[point_id(tenant_id, kind, entity_id)])
        with self._lock:
            self._client.delete(self.collection, selector)

    # --- reads ----------------------------------------------------------------------------------

    def get(self, tenant_id: str, kind: str, entity_id: str) -> Stored | None:
        _check_tenant(tenant_id)
        _check_kinds([kind])
        pid = point_id(tenant_id, kind, entity_id)
        with self._lock:
            records = self._client.retrieve(self.collection, [pid], with_payload=True)
        if not records or (records[0].payload or {}).get("tenant_id") != tenant_id:
            return None
        payload = dict(records[0].payload or {})
        version, status = int(payload["version"]), str(payload["status"])
        return Stored(kind, entity_id, version, status, _fields(payload))

    def search(
        self,
        tenant_id: str,
        query_text: str,
        kinds: Iterable[str] = KINDS,
        limit: int = 10,
    ) -> list[Hit]:
        """The tenant's indexed entities nearest to the text, best first."""
        _check_tenant(tenant_id)
        kinds = list(kinds)
        _check_kinds(kinds)
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        scope = q.Filter(
            must=[
                q.FieldCondition(key="tenant_id", match=q.MatchValue(value=tenant_id)),
                q.FieldCondition(key="kind", match=q.MatchAny(any=kinds)),
                q.FieldCondition(key="status", match=q.MatchValue(value=INDEXED)),
            ]
        )
        vector = self.embedder.embed([query_text])[0]
        with self._lock:
            found = self._client.query_points(
                self.collection,
                query=vector,
                using=VECTOR,
                query_filter=scope,
                limit=limit,
                with_payload=True,
            ).points
        hits = []
        for point in found:
            payload = dict(point.payload or {})
            if payload.get("tenant_id") != tenant_id:  # cannot happen; never leak if it did
                log.error("Qdrant returned a point of another tenant; dropped")
                continue
            hits.append(
                Hit(
                    str(payload["kind"]),
                    str(payload["entity_id"]),
                    float(point.score),
                    int(payload["version"]),
                    _fields(payload),
                )
            )
        return hits

    def versions(self, tenant_id: str, kind: str, entity_ids: list[str]) -> dict[str, int]:
        """The stored version of each of the tenant's entities that has a point."""
        _check_tenant(tenant_id)
        _check_kinds([kind])
        by_point = {point_id(tenant_id, kind, e): e for e in entity_ids}
        return {by_point[p]: v for p, v in self._versions(list(by_point)).items()}

    def _versions(self, ids: list[str]) -> dict[str, int]:
        if not ids:
            return {}
        with self._lock:
            records = self._client.retrieve(self.collection, ids, with_payload=["version"])
        return {str(r.id): int((r.payload or {}).get("version", -1)) for r in records}

    def close(self) -> None:
        with self._lock:
            self._client.close()


def _reserved(tenant_id: str, entry: Entry) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "kind": entry.kind,
        "entity_id": entry.entity_id,
        "version": entry.version,
        "status": entry.status,
    }


def _fields(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in RESERVED}


def _older_than(entries: Mapping[str, Entry]) -> q.Filter:
    """Per point: replace only where the stored version is older than the entry's."""
    return q.Filter(
        should=[
            q.Filter(
                must=[
                    q.HasIdCondition(has_id=[pid]),
                    q.FieldCondition(key="version", range=q.Range(lt=entry.version)),
                ]
            )
            for pid, entry in entries.items()
        ]
    )


def _check_tenant(tenant_id: str) -> None:
    if not isinstance(tenant_id, str) or not tenant_id.strip():
        raise ValueError("a tenant id is required")


def _check_kinds(kinds: list[str]) -> None:
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be among {', '.join(KINDS)}; got {kinds}")
