"""What every Aion process makes sure of at start: our topics exist as declared, our schemas
are registered, the read-model tables are migrated. Idempotent and safe to run concurrently."""

from __future__ import annotations

import logging

from confluent_kafka.admin import NewTopic

from aion.settings import Settings
from projections.migrate import migrate
from schemas.codec import Codec
from schemas.topics import COMMANDS, TASKS, TOPICS, create_missing_topics
from streams.fact_backfill import backfill

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics of the catalogue; returns the names created now."""
    wanted = [
        NewTopic(
            spec.name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication,
            config=spec.kafka_config(),
        )
        for spec in TOPICS
    ]
    created = create_missing_topics(settings.kafka, wanted)
    if created:
        log.info("created topics %s", created)
    return created


def bootstrap(settings: Settings) -> None:
    created = ensure_topics(settings)
    Codec(settings.registry).register_all()
    migrate(settings.database)
    if TASKS in created and COMMANDS not in created:  # an upgrade to decision 56
        sent = backfill(settings, settings.topic_partitions)
        log.info("replicated %d facts to %s for the task stage (decision 56)", sent, TASKS)
