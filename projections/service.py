"""Entry point of `aion projector`: every projection, each on its own consumer thread."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from aion.settings import Settings
from projections.core import CoreProjection
from projections.migrate import migrate
from projections.runner import Projection, ProjectionRunner
from schemas.codec import Codec

log = logging.getLogger(__name__)


def projections() -> list[Projection]:
    return [CoreProjection()]


def run(settings: Settings) -> None:
    migrate(settings.database)
    runners = [
        ProjectionRunner(
            p, kafka=settings.kafka, database_url=settings.database, codec=Codec(settings.registry)
        )
        for p in projections()
    ]
    threads = [threading.Thread(target=r.run, name=r.projection.name) for r in runners]

    def stop(signum: int, frame: FrameType | None) -> None:
        for runner in runners:
            runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for thread in threads:
        thread.start()
    log.info("projector running: %s", ", ".join(r.projection.name for r in runners))
    for thread in threads:
        thread.join()
