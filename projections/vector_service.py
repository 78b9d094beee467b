"""Where the Qdrant projection runs, and the store that search uses.

Qdrant's embedded local mode locks its folder to one process, so without ``AION_QDRANT_URL``
the process that serves search (the API) also runs the Qdrant projection, on a thread of its
own, sharing one store. With a server URL the projector runs it like any projection and the API
only searches. If the folder is held by another process (a second API on the same stack), this
process serves no search (a 503 that says why) rather than failing to start.

The runner retries what fails and never dies of it (``projections/runner.py``); its health
goes to readiness through a ``HealthBeacon`` like the projector's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from minio.error import S3Error

from aion.redis_clients import RedisLimits
from aion.settings import Settings
from aion.stack.s3 import MISSING, read_object, s3_client
from projections.embedder import embedder
from projections.health import HealthBeacon
from projections.runner import Delivered, Position, ProjectionRunner
from projections.vector_projection import Fetch, VectorProjection
from projections.vectors import StoreLocked, VectorStore, open_store
from schemas.codec import Codec

log = logging.getLogger(__name__)


class VectorPart:
    """The Qdrant projection in the runner's shape (the runner's cursor is not used: Qdrant
    writes are idempotent, so checkpointing after them is safe)."""

    def __init__(self, projection: VectorProjection) -> None:
        self.projection = projection
        self.name = projection.name
        self.topics = projection.topics

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        self.projection.apply(record_name, value)

    def apply_batch(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> None:
        self.projection.apply_batch([(name, value) for name, value, _ in batch])


def s3_fetch(settings: Settings) -> Fetch:
    client = s3_client(settings.s3, settings.s3_access_key, settings.s3_secret_key, False)

    def fetch(object_key: str) -> bytes:
        try:
            return read_object(client, settings.s3_bucket, object_key)
        except S3Error as exc:
            if exc.code in MISSING:
                raise KeyError(object_key) from exc
            raise

    return fetch


def open_vectors(settings: Settings) -> VectorStore:
    return open_store(settings.qdrant_url, settings.qdrant_location, embedder(settings.embedder))


def vector_part(settings: Settings, store: VectorStore) -> VectorPart:
    return VectorPart(VectorProjection(store, s3_fetch(settings)))


class SearchIndex:
    """The API's handle: the store (or why there is none) and, when embedded, its projection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: VectorStore | None = None
        self.unavailable = ""
        self.runner: ProjectionRunner | None = None
        self.thread: threading.Thread | None = None
        self.beacon: HealthBeacon | None = None

    def start(self) -> None:
        try:
            self.store = open_vectors(self.settings)
        except StoreLocked as exc:
            self.unavailable = str(exc)
            log.warning("search unavailable: %s", exc)
            return
        if self.settings.qdrant_url:
            return  # the projector indexes; this process only searches
        self.runner = ProjectionRunner(
            vector_part(self.settings, self.store),
            kafka=self.settings.kafka,
            database_url=self.settings.database,
            codec=Codec(self.settings.registry),
        )
        self.thread = threading.Thread(target=self.runner.run, name="vectors", daemon=True)
        self.thread.start()
        # Retrying is said in /readyz like the projector's runners (issue 17, finding 13).
        limits = RedisLimits.of(self.settings)
        self.beacon = HealthBeacon(self.settings.redis, limits, [self.runner.health])
        self.beacon.start()

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
        if self.beacon is not None:
            self.beacon.stop()
        if self.store is not None:
            self.store.close()
