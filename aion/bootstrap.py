"""What every Aion process makes sure of at start: our topics exist as declared, our schemas
are registered, the read-model tables are migrated. Idempotent and safe to run concurrently."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from aion.settings import Settings
from projections.migrate import migrate
from schemas.codec import Codec
from schemas.topics import TOPICS

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics of the catalogue; returns the names created now."""
    admin = AdminClient({"bootstrap.servers": settings.kafka})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(
            spec.name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication,
            config=spec.kafka_config(),
        )
        for spec in TOPICS
        if spec.name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=30).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    log.info("created topics %s", created)
    return created


def bootstrap(settings: Settings) -> None:
    ensure_topics(settings)
    Codec(settings.registry).register_all()
    migrate(settings.database)
