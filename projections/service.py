"""Entry point of `aion projector`: every projection, each on its own consumer thread."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from aion import metrics
from aion.redis_clients import RedisLimits
from aion.settings import Settings
from aion.single_flight import Outcome
from projections.core import CoreProjection
from projections.health import HealthBeacon
from projections.lag import BUDGET_S, lag_cache
from projections.migrate import migrate
from projections.runner import Projection, ProjectionRunner
from schemas.codec import Codec

log = logging.getLogger(__name__)


def topics_by_projection(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Every projection's name and topics, wherever it runs (for measuring lag), without
    opening anything."""
    from projections.embedder import HashedEmbedder, MinilmEmbedder
    from projections.vector_projection import VectorProjection

    model = MinilmEmbedder if settings.embedder == "minilm" else HashedEmbedder
    from projections.live import LiveProjection

    return {
        CoreProjection.name: CoreProjection().topics,
        LiveProjection.name: LiveProjection.topics,
        f"vectors.{model.name}": VectorProjection.topics,
    }


def projections(settings: Settings | None = None) -> list[Projection]:
    """The projections this process runs. The Qdrant one runs here only against a Qdrant
    server; embedded, the API process runs it (``projections/vector_service.py``)."""
    found: list[Projection] = [CoreProjection()]
    if settings is not None:
        from projections.live import LiveProjection

        found.append(LiveProjection(settings.redis, RedisLimits.of(settings)))
    if settings is not None and settings.qdrant_url:
        from projections.vector_service import open_vectors, vector_part

        found.append(vector_part(settings, open_vectors(settings)))
    return found


def run(settings: Settings) -> None:
    migrate(settings.database)
    # The lag of every projection, on this role's metrics port: measured when scraped, once
    # per lag.MAX_AGE_S however many scrape (the metrics server's threads wait for it).
    lags = lag_cache(settings.kafka, settings.database, topics_by_projection(settings))
    metrics.register_lag_metric(lambda: _values(lags.get(BUDGET_S)))
    runners = [
        ProjectionRunner(
            p,
            kafka=settings.kafka,
            database_url=settings.database,
            codec=Codec(settings.registry),
            batch_size=settings.projector_batch,
        )
        for p in projections(settings)
    ]
    threads = [threading.Thread(target=r.run, name=r.projection.name) for r in runners]
    beacon = HealthBeacon(settings.redis, RedisLimits.of(settings), [r.health for r in runners])

    def stop(signum: int, frame: FrameType | None) -> None:
        for runner in runners:
            runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for thread in threads:
        thread.start()
    beacon.start()
    log.info("projector running: %s", ", ".join(r.projection.name for r in runners))
    for thread in threads:
        thread.join()
    beacon.stop()


def _values(outcome: Outcome[dict[str, int]] | None) -> dict[str, int] | None:
    return outcome.value if outcome is not None else None
