"""Rebuild a Postgres projection from Kafka into a shadow schema, verify it, swap it in.

While the shadow is built the live projection keeps serving and writing. Then the live runner
is paused for a moment (it takes the projection's advisory lock in every batch transaction;
the replay holds that lock in one transaction), the shadow catches up to exactly the live
positions, every table is compared (row count and a checksum of its rows), and, when they
agree (or the caller accepts the differences), the tables trade schemas in that same
transaction: the live ones move to ``replaced_<name>_<time>``, the shadow ones to ``public``.
Postgres re-resolves table names in cached plans after such DDL, so the live runner simply
continues with the new tables. Nothing is produced to Kafka: a replay has no side effects.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import Consumer, Message, TopicPartition
from psycopg import sql

from projections.migrate import migrate
from projections.runner import Delivered, Projection, ProjectionRunner, load_checkpoints
from schemas.codec import Codec
from streams.topic_snapshot import partition_ranges, tool_consumer

Progress = Callable[[int, int], None]  # (events applied, events to apply)
Decoded = tuple[list[Message], list[tuple[Message, Delivered]]]  # a batch and its events

TABLES: dict[str, tuple[str, ...]] = {
    "core": (
        "tenants", "tenant_users", "models", "agents", "agent_versions", "policies", "tasks",
        "runs", "artifacts", "enforcements", "command_outcomes", "audit_log", "api_keys",
    ),
}  # fmt: skip


@dataclass
class TableCheck:
    table: str
    live_rows: int
    shadow_rows: int
    live_checksum: str
    shadow_checksum: str

    @property
    def equal(self) -> bool:
        return (self.live_rows, self.live_checksum) == (self.shadow_rows, self.shadow_checksum)


@dataclass
class ReplayReport:
    projection: str
    shadow_schema: str
    events: int = 0
    seconds: float = 0.0
    checks: list[TableCheck] = field(default_factory=list)
    swapped: bool = False
    replaced_schema: str | None = None

    @property
    def verified(self) -> bool:
        return all(c.equal for c in self.checks)


def lock_key(projection: str) -> str:
    return f"aion.projection.{projection}"


def _in_schema(database_url: str, schema: str) -> str:
    return psycopg.conninfo.make_conninfo(database_url, options=f"-c search_path={schema}")


def _checksum(cur: psycopg.Cursor[Any], schema: str, table: str) -> tuple[int, str]:
    row = cur.execute(
        sql.SQL(
            "select count(*), coalesce(md5(string_agg(md5(t::text), '' order by md5(t::text))),"
            " '') from {}.{} t"
        ).format(sql.Identifier(schema), sql.Identifier(table))
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


class Replay:
    def __init__(
        self,
        projection: Projection,
        *,
        kafka: str,
        database_url: str,
        registry: str,
        since_ms: int | None = None,
        shadow: str | None = None,
        batch_size: int = 2000,
    ) -> None:
        if projection.name not in TABLES:
            raise ValueError(f"{projection.name} cannot be replayed into Postgres tables")
        self.projection = projection
        self.kafka = kafka
        self.database_url = database_url
        self.since_ms = since_ms
        self.shadow = shadow or f"replay_{projection.name}_{int(time.time())}"
        self.report = ReplayReport(projection.name, self.shadow)
        self.runner = ProjectionRunner(
            projection, kafka=kafka, database_url=database_url, codec=Codec(registry)
        )
        self.runner.take_lock = False  # the shadow writer must not wait for the live one
        self.runner.trace = False  # history again is no part of the requests that made it
        self.batch_size = batch_size

    def build(self, progress: Progress | None = None) -> None:
        """Create the shadow schema and fill it up to the live projection's positions."""
        self.create_shadow()
        with psycopg.connect(self.database_url) as live:
            targets = load_checkpoints(live, self.projection.name)
        self.fill(targets, progress)

    def fill(self, targets: dict[tuple[str, int], int], progress: Progress | None) -> None:
        """Fill the empty shadow up to ``targets`` with its secondary indexes dropped, then
        build them once: maintaining them row by row cost a rebuild more than half of its
        time in Postgres. (Primary keys stay: the guards' ``on conflict`` needs them.) The
        time to build them counts as the replay's."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            deferred = [
                (str(name), str(definition))
                for name, definition in conn.execute(
                    "select i.indexname, i.indexdef from pg_indexes i where i.schemaname = %s"
                    " and not exists (select 1 from pg_constraint c where c.conname ="
                    " i.indexname and c.connamespace = i.schemaname::regnamespace)",
                    (self.shadow,),
                )
            ]
            for name, _ in deferred:
                conn.execute(
                    sql.SQL("drop index {}.{}").format(
                        sql.Identifier(self.shadow), sql.Identifier(name)
                    )
                )
        self.catch_up(targets, progress)
        started = time.monotonic()
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            for _, definition in deferred:
                conn.execute(definition.encode())
        self.report.seconds += time.monotonic() - started

    def create_shadow(self) -> None:
        """The shadow schema with every migration applied, empty."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(self.shadow)))
        migrate(_in_schema(self.database_url, self.shadow))

    def catch_up(self, targets: dict[tuple[str, int], int], progress: Progress | None) -> None:
        started = time.monotonic()
        consumer = tool_consumer(self.kafka, f"replay-{self.shadow}")
        with psycopg.connect(_in_schema(self.database_url, self.shadow)) as shadow:
            done = load_checkpoints(shadow, self.projection.name)
            starts: dict[tuple[str, int], int] = {}
            for topic in self.projection.topics:
                for p, (low, _) in partition_ranges(consumer, topic, self.since_ms).items():
                    begin = max(done.get((topic, p), low), low)
                    if targets.get((topic, p), 0) > begin:
                        starts[(topic, p)] = begin
            total = sum(targets[tp] - start for tp, start in starts.items())
            applied = 0
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in starts.items()])
            batches: queue.Queue[Decoded | BaseException | None] = queue.Queue(maxsize=2)
            stop = threading.Event()
            reader = threading.Thread(
                target=self._read,
                args=(consumer, targets, dict(starts), batches, stop),
                daemon=True,
            )
            reader.start()
            try:
                while (item := batches.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    batch, decoded = item
                    self.runner.apply_batch(shadow, batch, decoded)
                    applied += len(batch)
                    if progress:
                        progress(applied, total)
            finally:
                stop.set()
                reader.join()
        consumer.close()
        self.report.events += applied
        self.report.seconds += time.monotonic() - started

    def _read(
        self,
        consumer: Consumer,
        targets: dict[tuple[str, int], int],
        remaining: dict[tuple[str, int], int],
        batches: queue.Queue[Decoded | BaseException | None],
        stop: threading.Event,
    ) -> None:
        """Read and decode the next batch while the last one is written: decoding is Python
        work, writing mostly waiting for Postgres, so the two overlap. Ends with None."""
        try:
            while remaining and not stop.is_set():
                batch: list[Message] = []
                while remaining and len(batch) < self.batch_size:
                    found = consumer.consume(num_messages=self.batch_size, timeout=0.5)
                    for message in found:
                        if message.error() is not None:
                            continue
                        tp = (str(message.topic()), int(message.partition() or 0))
                        if tp in remaining and int(message.offset() or 0) < targets[tp]:
                            batch.append(message)
                            if int(message.offset() or 0) + 1 >= targets[tp]:
                                remaining.pop(tp)
                    if not found:
                        break
                if batch:
                    self._put(batches, stop, (batch, self.runner.decode_batch(batch)))
            self._put(batches, stop, None)
        except BaseException as exc:  # handed to the writing thread, which raises it
            self._put(batches, stop, exc)

    def _put(self, batches: queue.Queue[Any], stop: threading.Event, item: Any) -> None:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def verify_and_swap(self, swap: bool, accept_differences: bool = False) -> ReplayReport:
        """Pause the live runner, catch up to it, compare every table, swap if asked and equal
        (or accepted)."""
        with psycopg.connect(self.database_url) as live, live.transaction():
            live.execute(
                "select pg_advisory_xact_lock(hashtext(%s))", (lock_key(self.projection.name),)
            )
            self.catch_up(load_checkpoints(live, self.projection.name), None)
            with live.cursor() as cur:
                self.report.checks = []
                for table in TABLES[self.projection.name]:
                    live_rows, live_sum = _checksum(cur, "public", table)
                    shadow_rows, shadow_sum = _checksum(cur, self.shadow, table)
                    check = TableCheck(table, live_rows, shadow_rows, live_sum, shadow_sum)
                    self.report.checks.append(check)
                if swap and (self.report.verified or accept_differences):
                    replaced = self.shadow.replace("replay_", "replaced_", 1)
                    cur.execute(sql.SQL("create schema {}").format(sql.Identifier(replaced)))
                    for table in TABLES[self.projection.name]:
                        cur.execute(
                            sql.SQL("alter table public.{} set schema {}").format(
                                sql.Identifier(table), sql.Identifier(replaced)
                            )
                        )
                        cur.execute(
                            sql.SQL("alter table {}.{} set schema public").format(
                                sql.Identifier(self.shadow), sql.Identifier(table)
                            )
                        )
                    self.report.swapped = True
                    self.report.replaced_schema = replaced
        return self.report

    def drop_shadow(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(self.shadow))
            )
