"""Scenario 4, projection rebuild: the core projection rebuilt from Kafka into Postgres, beside
a raw consume, Avro decode and COPY of the same records.

Ours is the code path of `aion replay core` (projections/replay.py): a shadow schema with every
migration, the real projection parts, Avro decoding through the registry, one transaction per
batch with its checkpoint. It never swaps, so the live tables are never touched. The baseline
reads the very same partitions and offsets with confluent-kafka, decodes each record with
fastavro against its writer schema, and COPYs (position, value as jsonb) into a scratch table
keyed by position, one transaction per batch of the same size: the cost of merely moving those
events from Kafka into Postgres. Both run in the same process, alternating, over the same
events. Scratch schemas are dropped afterwards, whatever happens.
"""

from __future__ import annotations

import io
import json
import struct
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import fastavro
import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from psycopg import sql

from aion.bench.harness import Figure
from aion.bench.system import System
from aion.settings import Settings
from projections.core import CoreProjection
from projections.lag import end_offsets
from projections.replay import Replay
from schemas.codec import Codec
from schemas.topics import events_topic, producer_config
from streams.topic_snapshot import tool_consumer

SCENARIO = "4 projection rebuild"
QUICK_EVENTS = 10_000
FULL_EVENTS = 100_000
BATCH = 2000  # messages per transaction, for both sides (the replay's default)
SCRATCH_PREFIX = "bench_rebuild_"
USERS_PER_TENANT = 99  # synthetic history: a TenantCreated and 99 UserAdded per tenant

Ranges = dict[tuple[str, int], tuple[int, int]]  # (topic, partition) -> [start, end)


def choose(ends: dict[tuple[str, int], tuple[int, int]], limit: int) -> Ranges:
    """The first ``limit`` events of the core topics: the smallest topics first and whole (every
    kind of event the system has), then the larger ones from each partition's start."""
    sizes: dict[str, int] = {}
    for (topic, _), (low, high) in ends.items():
        sizes[topic] = sizes.get(topic, 0) + high - low
    chosen: Ranges = {}
    left = limit
    for (topic, p), (low, high) in sorted(ends.items(), key=lambda i: (sizes[i[0][0]], i[0])):
        take = min(high - low, left)
        if take > 0:
            chosen[(topic, p)] = (low, low + take)
            left -= take
    return chosen


def _envelope(tenant: str, version: int, kind: str, now: datetime, actor: str) -> dict[str, Any]:
    command_id = str(uuid.uuid4())
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{command_id}/0")),
        "event_type": kind,
        "command_id": command_id,
        "correlation_id": command_id,
        "causation_id": command_id,
        "tenant_id": tenant,
        "aggregate_type": "tenant",
        "aggregate_id": tenant,
        "aggregate_version": version,
        "occurred_at": now,
        "actor": actor,
        "traceparent": None,
        "tracestate": None,
        "command_outcome": True,
    }


def produce_history(settings: Settings, events: int, prefix: str = "bench-rebuild") -> None:
    """At least ``events`` synthetic tenant events (as the command processor writes them, with
    envelopes and deterministic event ids): a TenantCreated and 99 UserAdded per tenant named
    ``<prefix>-<run>-<n>``. The live projector applies them too."""
    topic = events_topic("tenant")
    codec = Codec(settings.registry)
    producer = Producer(producer_config(settings.kafka, **{"linger.ms": 20}))
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    for t in range(-(-events // (USERS_PER_TENANT + 1))):
        tenant = f"{prefix}-{run}-{t:05d}"
        created = {
            "envelope": _envelope(tenant, 1, "aion.tenant.TenantCreated", now, prefix),
            "tenant_id": tenant,
            "display_name": f"Synthetic {t}",
            "labels": {"load": prefix},
            "limits": {},
        }
        value = codec.encode(topic, "aion.tenant.TenantCreated", created)
        producer.produce(topic, key=tenant, value=value)
        for u in range(USERS_PER_TENANT):
            added = {
                "envelope": _envelope(tenant, u + 2, "aion.tenant.UserAdded", now, prefix),
                "tenant_id": tenant,
                "user_id": f"user-{u:02d}",
                "display_name": f"User {u}",
                "roles": ["viewer"],
            }
            value = codec.encode(topic, "aion.tenant.UserAdded", added)
            producer.produce(topic, key=tenant, value=value)
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("synthetic events were not all acknowledged within 120 s")


def events_to_rebuild(settings: Settings, limit: int) -> Ranges:
    topics = CoreProjection().topics
    ends = end_offsets(settings.kafka, topics)
    held = sum(high - low for low, high in ends.values())
    if held < limit:
        produce_history(settings, limit - held)
        ends = end_offsets(settings.kafka, topics)
    return choose(ends, limit)


def ours(settings: Settings, ranges: Ranges) -> float:
    """Events/s of `aion replay core`'s rebuild into a fresh shadow schema (dropped after)."""
    replay = Replay(
        CoreProjection(),
        kafka=settings.kafka,
        database_url=settings.database,
        registry=settings.registry,
        shadow=f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}",
        batch_size=BATCH,
    )
    try:
        replay.create_shadow()
        replay.fill({tp: end for tp, (_, end) in ranges.items()}, None)
        expected = sum(end - start for start, end in ranges.values())
        if replay.report.events != expected:
            raise RuntimeError(f"rebuilt {replay.report.events} events, not {expected}")
        return replay.report.events / replay.report.seconds
    finally:
        replay.drop_shadow()


class RawDecoder:
    """Confluent wire format to a dict with fastavro and the writer's schema, nothing else."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.parsed: dict[int, Any] = {}

    def __call__(self, data: bytes) -> Any:
        (schema_id,) = struct.unpack(">I", data[1:5])
        schema = self.parsed.get(schema_id)
        if schema is None:
            schema = fastavro.parse_schema(self.codec.writer_schema(data))
            self.parsed[schema_id] = schema
        return fastavro.schemaless_reader(io.BytesIO(data[5:]), schema, None)


def raw(settings: Settings, ranges: Ranges, decode: RawDecoder) -> float:
    """Events/s of consuming the same records, decoding them and COPYing them into a scratch
    table keyed by position, one transaction per batch."""
    schema = f"{SCRATCH_PREFIX}raw_{uuid.uuid4().hex[:12]}"
    table = sql.Identifier(schema, "events")
    copy = sql.SQL('copy {} (topic, partition, "offset", value) from stdin').format(table)
    with psycopg.connect(settings.database) as conn:
        try:
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL(
                    'create table {} (topic text, partition int, "offset" bigint, value jsonb'
                    ' not null, primary key (topic, partition, "offset"))'
                ).format(table)
            )
            conn.commit()
            started = time.monotonic()
            done = _copy_all(settings, ranges, decode, conn, copy)
            seconds = time.monotonic() - started
        finally:
            conn.rollback()
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
            conn.commit()
    return done / seconds


def _copy_all(
    settings: Settings,
    ranges: Ranges,
    decode: RawDecoder,
    conn: psycopg.Connection[Any],
    copy: sql.Composed,
) -> int:
    consumer: Consumer = tool_consumer(settings.kafka, f"bench-rebuild-{uuid.uuid4().hex[:8]}")
    consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in ranges.items()])
    remaining = {tp: end for tp, (_, end) in ranges.items()}
    done = 0
    try:
        while remaining:
            rows = []
            for message in consumer.consume(num_messages=BATCH, timeout=0.5):
                if message.error() is not None:
                    continue
                tp = (str(message.topic()), int(message.partition() or 0))
                offset = int(message.offset() or 0)
                if tp not in remaining or offset >= remaining[tp]:
                    continue
                if offset + 1 >= remaining[tp]:
                    remaining.pop(tp)
                value = json.dumps(decode(message.value() or b""), default=str)
                rows.append((tp[0], tp[1], offset, value))
            if rows:
                with conn.transaction(), conn.cursor() as cur, cur.copy(copy) as writer:
                    for row in rows:
                        writer.write_row(row)
                done += len(rows)
    finally:
        consumer.close()
    return done


def leftovers(settings: Settings) -> list[str]:
    """Scratch schemas of this scenario still in the database (none, after a run)."""
    with psycopg.connect(settings.database) as conn:
        rows = conn.execute(
            "select nspname from pg_namespace where nspname like %s",
            (SCRATCH_PREFIX.replace("_", r"\_") + "%",),
        ).fetchall()
    return [str(r[0]) for r in rows]


def rebuild(system: System, trials: int, quick: bool) -> list[Figure]:
    settings = system.settings
    ranges = events_to_rebuild(settings, QUICK_EVENTS if quick else FULL_EVENTS)
    events = sum(end - start for start, end in ranges.values())
    decode = RawDecoder(Codec(settings.registry))
    ours_rates: list[float] = []
    raw_rates: list[float] = []
    for trial in range(trials):
        # Alternate which goes first, so neither always gets the warmer caches.
        if trial % 2:
            raw_rates.append(raw(settings, ranges, decode))
            ours_rates.append(ours(settings, ranges))
        else:
            ours_rates.append(ours(settings, ranges))
            raw_rates.append(raw(settings, ranges, decode))
    topics = sorted({t for t, _ in ranges})
    note = f"{events:,} events from {len(topics)} topics, {BATCH} per transaction"
    return [
        Figure(
            SCENARIO,
            "core rebuild events/s",
            "/s",
            ours_rates,
            raw_rates,
            "raw consume + decode + COPY",
            target=">= 20,000/s and >= 50% of raw",
            check=lambda f: f.median >= 20_000 and (f.ratio or 0) >= 0.5,
            note=note,
        ),
        Figure(SCENARIO, "raw consume + decode + COPY events/s", "/s", raw_rates, note=note),
    ]
