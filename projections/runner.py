"""Runs a projection: consume its topics, apply each batch and its Kafka position in one
Postgres transaction.

The checkpoint table, not Kafka's committed offsets, is the truth: on assignment the consumer
seeks to the positions stored beside the rows, so a crash between the database commit and
anything else neither loses nor repeats an event. Offsets are also committed to Kafka
(asynchronously), only so that lag shows up in the usual tools.

Each event applied is counted (``aion_projection_events_applied_total``) and, when it carries a
trace, applied in a span that continues it; each batch is timed with its commit.

Faults (issue 17, finding 13): the runner never dies of an error. A transient one (Postgres,
Kafka, Redis, Qdrant, S3 gone: ``projections.faults``) keeps the batch in hand, drops the
connection and tries again after 0.5 s doubling to 10 s, its ``health`` saying ``retrying``
meanwhile (published to readiness by ``projections.health``). An error that depends on the
event makes the runner apply the batch's events one at a time; an event that fails alone
``POISON_ATTEMPTS`` times, or does not decode, goes to the dead letters with its error
(``projections.dead_letters``) and its position is committed past it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, NamedTuple, Protocol, runtime_checkable

import psycopg
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from opentelemetry import trace

from aion import telemetry, tracing
from aion.metrics import PROJECTION_BATCH_SECONDS, PROJECTION_EVENTS
from projections.dead_letters import ProjectionDeadLetters
from projections.decoding import Decoder
from projections.faults import is_transient
from projections.health import RunnerHealth
from schemas.codec import Codec, DecodeError, RegistryUnavailable

COMMIT_EVERY_S = 1.0
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0
POISON_ATTEMPTS = 3  # tries of one event alone before it is a dead letter
PING_IDLE_S = 5.0  # an idle runner checks its connection this often (finds a lost one early)
FETCH_MIN_BYTES = 65_536
FETCH_WAIT_MS = 10
log = logging.getLogger(__name__)
tracer = trace.get_tracer("aion.projections")


class Position(NamedTuple):
    """Where an event is (a tuple: made for every event of a rebuild, three times cheaper than
    a frozen dataclass)."""

    topic: str
    partition: int
    offset: int


def position(message: Message) -> Position:
    return Position(str(message.topic()), int(message.partition() or 0), int(message.offset() or 0))


def take_available(consumer: Consumer, most: int, timeout: float) -> list[Message]:
    """Wait up to ``timeout`` for one message, then take what else is already fetched.

    ``Consumer.consume(n, timeout)`` waits until it has ``n`` messages or the timeout passes:
    below a batch per timeout, every event waited out the timeout (half a second) before it
    was projected. Batches now grow with the load instead of with the clock.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=most - 1, timeout=0)] if most > 1 else [first]


# One decoded event as a projection gets it: record full name, value, Kafka position.
Delivered = tuple[str, dict[str, Any], Position]


class Projection(Protocol):
    name: str
    topics: tuple[str, ...]

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None: ...


@runtime_checkable
class BatchProjection(Projection, Protocol):
    """A projection that applies a whole batch at once (in event order, same guarantees)."""

    def apply_batch(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> None: ...


def load_checkpoints(conn: psycopg.Connection[Any], projection: str) -> dict[tuple[str, int], int]:
    rows = conn.execute(
        "select topic, partition, next_offset from projection_checkpoints where projection = %s",
        (projection,),
    )
    return {(t, p): o for t, p, o in rows}


def save_checkpoints(
    cur: psycopg.Cursor[Any], projection: str, messages: Iterable[Message]
) -> None:
    latest: dict[tuple[str, int], int] = {}
    for m in messages:  # a partition's messages come in offset order: the last one's wins
        key = (str(m.topic()), m.partition() or 0)
        next_offset = (m.offset() or 0) + 1
        if next_offset > latest.get(key, -1):
            latest[key] = next_offset
    cur.executemany(
        "insert into projection_checkpoints (projection, topic, partition, next_offset)"
        " values (%s, %s, %s, %s) on conflict (projection, topic, partition) do update"
        " set next_offset = greatest(projection_checkpoints.next_offset, excluded.next_offset),"
        " updated_at = now()",
        [(projection, t, p, o) for (t, p), o in latest.items()],
    )


class ProjectionRunner:
    def __init__(
        self,
        projection: Projection,
        *,
        kafka: str,
        database_url: str,
        codec: Codec,
        batch_size: int = 500,
    ) -> None:
        self.projection = projection
        self.kafka = kafka
        self.database_url = database_url
        self.codec = codec
        self.decoder = Decoder(codec)
        self.batch_size = batch_size
        self.stopping = threading.Event()
        # Each batch transaction takes the projection's advisory lock, so that a replay can
        # pause this runner for the moment it swaps tables (projections/replay.py).
        self.take_lock = True
        # A span per traced event, under the span that produced it; a replay turns it off
        # (re-applying history is not part of those requests, and extracting each event's
        # trace context cost a rebuild a fifth of its time).
        self.trace = True
        self.group = f"aion.projection.{projection.name}"
        self.health = RunnerHealth(projection.name)
        # Set by run(): a replay's runner only decodes, and leaves dead letters to this one.
        self.dead_letters: ProjectionDeadLetters | None = None
        self.dead_lettered: set[Position] = set()  # undecodable, sent, not yet committed past
        self.consumer = Consumer(
            {
                "bootstrap.servers": kafka,
                "group.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                # A crashed projector's partitions move on within seconds, not librdkafka's 45.
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 3000,
                # A busy topic answers each fetch at once with the few records it has: a fetch
                # that waits up to 10 ms for 64 KiB takes a whole batch, in fewer requests.
                "fetch.min.bytes": FETCH_MIN_BYTES,
                "fetch.wait.max.ms": FETCH_WAIT_MS,
            }
        )

    def connect(self) -> psycopg.Connection[Any]:
        """A connection named after the projection (operators see it in pg_stat_activity)."""
        return psycopg.connect(
            self.database_url,
            connect_timeout=5,
            application_name=f"aion.projection.{self.projection.name}"[:63],
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                with self.connect() as conn:
                    stored = load_checkpoints(conn, self.projection.name)
                break
            except Exception as exc:  # Postgres away: the positions are waited for
                if self.stopping.is_set():
                    return
                self._failed(exc, delay)
                delay = min(delay * 2, RETRY_MAX_S)
        for tp in partitions:
            tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        consumer.assign(partitions)
        log.info(
            "%s assigned %s",
            self.projection.name,
            [(tp.topic, tp.partition, tp.offset) for tp in partitions],
        )

    def _failed(self, error: BaseException, delay: float) -> None:
        """Say so (health, log), then wait ``delay`` unless stopping."""
        self.health.retrying(error)
        if is_transient(error):
            log.warning("%s: %s; again in %.1f s", self.projection.name, error, delay)
        else:
            log.exception("%s failed; again in %.1f s", self.projection.name, delay)
        self.stopping.wait(delay)

    def run(self) -> None:
        """Consume and apply until stopped; no error ends it (see the module's docstring)."""
        self.dead_letters = ProjectionDeadLetters(self.kafka, self.projection.name)
        self.consumer.subscribe(list(self.projection.topics), on_assign=self._on_assign)
        committed_at, uncommitted, pinged_at = 0.0, False, time.monotonic()
        conn: psycopg.Connection[Any] | None = None
        pending: list[Message] = []  # polled, not yet committed to Postgres: kept over a retry
        delay = RETRY_FIRST_S
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = self.connect()
                if not pending:
                    pending, error = self._poll()
                    if error is not None:  # after the batch is in hand, so it is not lost
                        raise KafkaException(error)
                if pending:
                    self.project(conn, pending)
                    uncommitted = True
                elif time.monotonic() - pinged_at >= PING_IDLE_S:
                    conn.execute("select 1")
                    conn.rollback()  # else the ping's transaction holds every later batch
                    pinged_at = time.monotonic()
                self.health.running()
                delay = RETRY_FIRST_S
            except Exception as exc:
                self._drop(conn)
                conn = None
                self._failed(exc, delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            # Kafka's offsets only show lag to the usual tools (the checkpoint is the
            # truth): committed at most every COMMIT_EVERY_S, not once per batch.
            if uncommitted and time.monotonic() - committed_at >= COMMIT_EVERY_S:
                self._commit_offsets(asynchronous=True)
                committed_at, uncommitted = time.monotonic(), False
        if uncommitted:
            self._commit_offsets(asynchronous=False)
        self._drop(conn)
        self.consumer.close()
        self.dead_letters.close()
        self.health.stopped()

    def _poll(self) -> tuple[list[Message], KafkaError | None]:
        """The next batch, and the first consumer error that is neither retriable nor a
        partition's end (-191)."""
        messages = take_available(self.consumer, self.batch_size, timeout=0.5)
        usable, failure = [], None
        for m in messages:
            error = m.error()
            if error is None:
                usable.append(m)
            elif failure is None and not (error.retriable() or error.code() == -191):
                failure = error
        return usable, failure

    def _commit_offsets(self, asynchronous: bool) -> None:
        try:
            if asynchronous:
                self.consumer.commit(asynchronous=True)
            else:
                self.consumer.commit(asynchronous=False)
        except KafkaException as exc:  # only for the tools: the checkpoint is the truth
            log.debug("%s: offsets not committed to Kafka: %s", self.projection.name, exc)

    @staticmethod
    def _drop(conn: psycopg.Connection[Any] | None) -> None:
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken: nothing to release
                log.debug("closing a broken connection", exc_info=True)

    def project(self, conn: psycopg.Connection[Any], pending: list[Message]) -> None:
        """Apply ``pending``, removing from it what is committed. A transient error is raised
        with the rest still in it; an error of the batch's own makes its events go one by one,
        and an event that fails alone becomes a dead letter."""
        try:
            self.apply_batch(conn, pending)
            pending.clear()
            return
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("%s: a batch failed (%s); applying it event by event", self.name, exc)
        while pending:
            self._apply_alone(conn, pending[0])
            pending.pop(0)

    @property
    def name(self) -> str:
        return self.projection.name

    def _apply_alone(self, conn: psycopg.Connection[Any], message: Message) -> None:
        error: Exception | None = None
        for attempt in range(1, POISON_ATTEMPTS + 1):
            try:
                self.apply_batch(conn, [message])
                return
            except Exception as exc:
                if is_transient(exc):
                    raise
                error = exc
                log.warning(
                    "%s: %s failed (try %d): %s", self.name, position(message), attempt, exc
                )
                if attempt < POISON_ATTEMPTS:
                    self.stopping.wait(RETRY_FIRST_S * attempt)
        assert error is not None
        self.dead_letter(conn, message, error)

    def dead_letter(
        self, conn: psycopg.Connection[Any], message: Message, error: Exception
    ) -> None:
        """Send the event to the dead letters, then commit its position past it."""
        assert self.dead_letters is not None
        self.dead_letters.send(message, error)
        self.health.dead_letters += 1
        with conn.transaction(), conn.cursor() as cur:
            if self.take_lock:
                cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (self.group,))
            save_checkpoints(cur, self.name, [message])

    def decode_batch(self, batch: list[Message]) -> list[tuple[Message, Delivered]]:
        """The batch's events, decoded; poison messages left out."""
        delivered: list[tuple[Message, Delivered]] = []
        for message in batch:
            record = self._decode(message)
            if record is not None:
                delivered.append((message, (record[0], record[1], position(message))))
        return delivered

    def apply_batch(
        self,
        conn: psycopg.Connection[Any],
        batch: list[Message],
        decoded: list[tuple[Message, Delivered]] | None = None,
    ) -> None:
        """Apply a batch and its positions in one transaction (``decoded``: the batch's
        events when they were decoded beforehand, as a replay does on another thread)."""
        started = time.perf_counter()
        delivered = self.decode_batch(batch) if decoded is None else decoded
        # A batched projection's statements need no result before the next is sent (but for
        # its loads), so they go in pipeline mode: Postgres writes one part while Python folds
        # the next. Errors still end the transaction before this returns.
        batched = isinstance(self.projection, BatchProjection)
        with (
            conn.pipeline() if batched else nullcontext(),
            conn.transaction(),
            conn.cursor() as cur,
        ):
            if self.take_lock:
                key = f"aion.projection.{self.projection.name}"
                cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (key,))
            if batched:
                assert isinstance(self.projection, BatchProjection)
                with self._batch_spans(delivered):
                    self.projection.apply_batch(cur, [d for _, d in delivered])
            else:
                for message, (name, value, at) in delivered:
                    envelope = value.get("envelope") if self.trace else None
                    with self._event_span(message, name, envelope):
                        self.projection.apply(cur, name, value, at)
            save_checkpoints(cur, self.projection.name, batch)
        if self.dead_lettered:  # committed past those of this batch
            self.dead_lettered.difference_update(position(m) for m in batch)
        PROJECTION_EVENTS.labels(self.projection.name).inc(len(delivered))
        PROJECTION_BATCH_SECONDS.labels(self.projection.name).observe(time.perf_counter() - started)

    @contextmanager
    def _batch_spans(self, delivered: list[tuple[Message, Delivered]]) -> Iterator[None]:
        """The per-event CONSUMER spans of a batch applied at once: each traced event's span
        starts before the batch and ends after it (the time its rows took to write)."""
        spans = []
        for message, (name, value, at) in delivered if self.trace else ():
            envelope = value.get("envelope")
            if tracing.has_parent(envelope):
                spans.append(
                    tracer.start_span(
                        f"process {at.topic}",
                        context=tracing.parent_context(envelope),
                        kind=trace.SpanKind.CONSUMER,
                        attributes=self._span_attributes(message, name, envelope),
                    )
                )
        try:
            yield
        finally:
            for span in spans:
                span.end()

    def _span_attributes(
        self, message: Message, record_name: str, envelope: dict[str, Any] | None
    ) -> dict[str, Any]:
        at = position(message)
        return {
            **tracing.kafka_attributes(
                at.topic, message.key(), at.partition, at.offset, self.group
            ),
            "messaging.message.id": str((envelope or {}).get("event_id")),
            "aion.projection": self.projection.name,
            "aion.event.type": record_name,
        }

    @contextmanager
    def _event_span(
        self, message: Message, record_name: str, envelope: dict[str, Any] | None
    ) -> Iterator[None]:
        """A CONSUMER span per event that carries a trace (child of the span that produced
        it), and the event's correlation ids on every log line meanwhile. Events without a
        trace (imports, old history) get no span: a replay would otherwise make thousands."""
        with telemetry.log_context(**telemetry.envelope_ids(envelope)):
            if not tracing.has_parent(envelope):
                yield
                return
            with tracer.start_as_current_span(
                f"process {message.topic()}",
                context=tracing.parent_context(envelope),
                kind=trace.SpanKind.CONSUMER,
                attributes=self._span_attributes(message, record_name, envelope),
            ):
                yield

    def _decode(self, message: Message) -> tuple[str, dict[str, Any]] | None:
        """The record, None for a poison message (skipped); waits out a registry outage."""
        delay = 0.5
        while True:
            try:
                return self.decoder.decode(str(message.topic()), message.value() or b"")
            except DecodeError as exc:
                self._undecodable(message, exc)
                return None
            except RegistryUnavailable as exc:
                self.health.retrying(exc)
                log.warning("schema registry unavailable (%s); retrying in %.1f s", exc, delay)
                if self.stopping.wait(delay):
                    raise
                delay = min(delay * 2, 10.0)

    def _undecodable(self, message: Message, error: DecodeError) -> None:
        """A running projection sends it to the dead letters (once, though its batch may be
        tried again); a replay's runner (no dead letters) only logs it."""
        at = position(message)
        if self.dead_letters is None:
            log.error("%s skipped undecodable %s: %s", self.name, at, error)
            return
        if at not in self.dead_lettered:
            self.dead_letters.send(message, error)
            self.health.dead_letters += 1
            self.dead_lettered.add(at)

    def stop(self) -> None:
        self.stopping.set()
