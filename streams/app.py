"""The Faust application: one app, its tables on RocksDB, the topics it reads and writes.

Every message body is Avro in the Confluent wire format, so Faust sees raw bytes and our codec
does the (de)serialisation. The app's own internal topics (table changelogs) are declared by
Faust; ours are created by ``aion.bootstrap`` from the topic catalogue.
"""

from __future__ import annotations

from functools import cached_property

import faust
from confluent_kafka.admin import NewTopic
from minio import Minio

from aion.settings import Settings
from aion.stack.s3 import s3_client
from schemas.codec import Codec
from schemas.topics import COMMANDS, DEADLETTER, TOPICS, create_missing_topics
from streams.emitter import Emitter
from streams.fetching import Transport


class StreamsApp:
    """The Faust app and the handles its agents share, built from settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # RocksDB locks its folder: each worker on a machine needs its own (AION_WORKER_ID).
        datadir = settings.stack_dir / "faust" / f"worker-{settings.worker_id}"
        datadir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
        self.app = faust.App(
            "aion-streams",
            broker=f"kafka://{settings.kafka}",
            store="rocksdb://",
            datadir=str(datadir),
            web_enabled=False,
            key_serializer="raw",
            value_serializer="raw",
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=settings.topic_replication,
            # Offsets are committed often so that a restart replays little; correctness comes
            # from idempotent processing, not from the commit interval.
            broker_commit_every=100,
            broker_commit_interval=1.0,
            producer_acks=-1,
            # Faust's producer writes the tables' changelogs: a few ms of linger packs a
            # batch's documents into fewer, larger produce requests.
            producer_linger=0.005,
            # Kafka's usual 10 s (Faust's default is 60 s): a crashed worker's partitions move
            # to the others within seconds, not a minute.
            broker_session_timeout=10.0,
            broker_heartbeat_interval=3.0,
        )
        # Faust's consumer, but with fetches the broker answers within 10 ms (streams.fetching).
        self.app.transport = Transport(self.app.conf.broker_consumer, self.app)
        self.topics = {
            spec.name: self.app.topic(spec.name, key_type=bytes, value_type=bytes)
            for spec in TOPICS
        }
        self.deadletter = self.app.topic(DEADLETTER, key_type=bytes, value_type=bytes)
        self.commands = self.topics[COMMANDS]
        # Aggregate state, keyed "<aggregate type>:<aggregate id>". Commands are keyed by tenant,
        # so every aggregate of a tenant lives in the same partition, in this table's same
        # local store: a decider reads the tenant or the task's agent consistently.
        self.aggregates = self.app.Table(
            "aggregates", default=None, partitions=settings.topic_partitions, value_type=bytes
        )
        # The task stage's state (decision 56), keyed "task:<tenant>/<task>", and the facts
        # replicated to each of its partitions ("fact:<type>:<id>"): aion.tasks is keyed by
        # task, so one tenant's tasks spread over every partition of this table.
        self.tasks = self.app.Table(
            "tasks", default=None, partitions=settings.topic_partitions, value_type=bytes
        )
        # The orchestrator's state per tenant (``scheduler:<tenant>``), apart so that the timer
        # can scan it every second: one small document per tenant.
        self.schedulers = self.app.Table(
            "schedulers", default=None, partitions=settings.topic_partitions, value_type=bytes
        )
        # tenant -> when the timer last asked it to tick (monotonic seconds), for which due time
        self.ticked: dict[str, tuple[float, int]] = {}

    def declare_changelogs(self) -> list[str]:
        """Create the tables' changelog topics before Faust starts. Left to Faust, on a fresh
        cluster the consumer could read its metadata before they existed, and the first write
        to a table crashed the command processor (PartitionsMismatch: 0 partitions), leaving
        the worker hung at the next rebalance."""
        wanted = [
            NewTopic(
                table.changelog_topic.get_topic_name(),
                num_partitions=self.settings.topic_partitions,
                replication_factor=self.settings.topic_replication,
                config={"cleanup.policy": "compact"},
            )
            for table in (self.aggregates, self.schedulers, self.tasks)
        ]
        return create_missing_topics(self.settings.kafka, wanted)

    @cached_property
    def emitter(self) -> Emitter:
        """The producer of the command processor's own messages (``streams.emitter``)."""
        return Emitter(self.settings.kafka, int(self.app.conf.producer_max_request_size))

    @cached_property
    def task_emitter(self) -> Emitter:
        """The task stage's own producer: each stage flushes only its own batch's messages."""
        return Emitter(self.settings.kafka, int(self.app.conf.producer_max_request_size))

    @cached_property
    def codec(self) -> Codec:
        return Codec(self.settings.registry)

    @cached_property
    def s3(self) -> Minio:
        s = self.settings
        return s3_client(s.s3, s.s3_access_key, s.s3_secret_key, s.s3_secure)
