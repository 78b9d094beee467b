"""`aion events dump | tail`: the events topics as decoded JSON lines, as they stand or live.

Reading never joins a consumer group or commits an offset: ``dump`` reads each topic as it
stands (``read_snapshot``: every partition up to the end it had when reading began), ``tail``
assigns every partition itself at its end (or its beginning, or a time) and follows it. Filters
look at the decoded record (the envelope's tenant and aggregate type, the record's name), not at
the key, so they hold for any topic. Export and import are in ``aion.event_archive``.
"""

from __future__ import annotations

import base64
import difflib
import json
import struct
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from uuid import UUID

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from aion.policy_simulation import parse_duration
from schemas import catalog
from schemas.codec import Codec, DecodeError
from schemas.topics import EVENT_KEYS, TOPICS
from streams.topic_snapshot import read_snapshot, tool_consumer

EVENTS_PREFIX = "aion.events."
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KAFKA_TIMEOUT = 10.0  # seconds for a metadata request: a stopped broker is an error, not a hang


class EventToolError(Exception):
    """A failure the CLI reports as it is (exit 1): missing topics, a file that is no export."""


class BadOption(ValueError):
    """A filter option that cannot be used; ``option`` names it (a usage error)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


# --- what to read -----------------------------------------------------------------------------


def events_topics() -> list[str]:
    """The catalogue's events topics, ``aion.events.*``."""
    return [spec.name for spec in TOPICS if spec.name.startswith(EVENTS_PREFIX)]


def topic_aggregate(topic: str) -> str | None:
    """``task`` for ``aion.events.task`` (or a renamed copy such as ``it-1.aion.events.task``)."""
    _, found, aggregate = topic.rpartition(EVENTS_PREFIX)
    return aggregate if found and aggregate else None


def parse_since(text: str, now_ms: int | None = None) -> int:
    """Epoch milliseconds from a duration back from now (``30m``, ``2h``, ``7d``, ``1h30m``)
    or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        window = parse_duration(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(
                f"invalid time {text!r}: give a duration back from now (a whole number and a "
                "unit s, m, h, d or w, e.g. 30m, 2h, 7d) or an ISO 8601 time such as "
                "2025-01-31T12:00:00Z"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    now = time.time() * 1000 if now_ms is None else now_ms
    return int(now - window.total_seconds() * 1000)


def resolve_records(names: Iterable[str]) -> frozenset[str]:
    """Full record names for full or short names (``TaskSucceeded``); BadOption names the
    closest matches and every record there is."""
    known = sorted(catalog.all_records())
    by_short: dict[str, list[str]] = {}
    for full in known:
        by_short.setdefault(full.rsplit(".", 1)[1], []).append(full)
    chosen: set[str] = set()
    for name in names:
        if name in known:
            chosen.add(name)
        elif name in by_short:
            chosen.update(by_short[name])
        else:
            close = difflib.get_close_matches(name, [*known, *by_short], n=3, cutoff=0.6)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise BadOption(
                "--type", f"no record type {name!r}{hint}. The record types are: {', '.join(known)}"
            )
    return frozenset(chosen)


def check_aggregate(aggregate: str) -> str:
    if aggregate not in EVENT_KEYS:
        known = ", ".join(EVENT_KEYS)
        raise BadOption("--aggregate", f"no aggregate {aggregate!r}; the aggregates are {known}")
    return aggregate


def event_filter(
    tenant: str | None,
    aggregate: str | None,
    types: Iterable[str] | None,
    since: str | None,
) -> EventFilter:
    """The filter the CLI's options describe; BadOption names the option that is wrong."""
    try:
        since_ms = None if since is None else parse_since(since)
    except ValueError as exc:
        raise BadOption("--since", str(exc)) from exc
    return EventFilter(
        tenant=tenant,
        aggregate=None if aggregate is None else check_aggregate(aggregate),
        records=resolve_records(types or ()),
        since_ms=since_ms,
    )


# --- events and filters -----------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """A decoded event and where it was."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    record_name: str
    value: dict[str, Any]
    raw: bytes  # the message value: Confluent header (magic byte, schema id) and Avro body

    @property
    def envelope(self) -> Mapping[str, Any]:
        envelope = self.value.get("envelope")
        return envelope if isinstance(envelope, Mapping) else {}

    @property
    def tenant_id(self) -> str | None:
        found = self.envelope.get("tenant_id", self.value.get("tenant_id"))
        return None if found is None else str(found)

    @property
    def aggregate_type(self) -> str | None:
        found = self.envelope.get("aggregate_type")
        return None if found is None else str(found)

    @property
    def schema_id(self) -> int:
        return int(struct.unpack(">I", self.raw[1:5])[0])

    @property
    def body(self) -> bytes:
        return self.raw[5:]

    def as_json(self) -> dict[str, Any]:
        when = self.timestamp_ms
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": None if when is None else iso(EPOCH + timedelta(milliseconds=when)),
            "key": None if self.key is None else self.key.decode("utf-8", "replace"),
            "record": self.record_name,
            "value": jsonable(self.value),
        }


@dataclass(frozen=True)
class EventFilter:
    """Which events to keep; an unset field keeps every event."""

    tenant: str | None = None
    aggregate: str | None = None  # the topic's aggregate or the envelope's aggregate_type
    records: frozenset[str] = frozenset()  # full names
    since_ms: int | None = None

    def matches(self, event: Event) -> bool:
        if self.records and event.record_name not in self.records:
            return False
        if self.since_ms is not None and (event.timestamp_ms or 0) < self.since_ms:
            return False
        if self.tenant is not None and event.tenant_id != self.tenant:
            return False
        aggregates = (topic_aggregate(event.topic), event.aggregate_type)
        return self.aggregate is None or self.aggregate in aggregates

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "records": sorted(self.records)}


def iso(moment: datetime) -> str:
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.isoformat(timespec=spec)


def jsonable(value: Any) -> Any:
    """A decoded Avro value as JSON: logical types as ISO 8601 (times) or strings, bytes as
    base64."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date | time_of_day):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def json_line(event: Event) -> str:
    return json.dumps(event.as_json(), ensure_ascii=False, separators=(",", ":"))


def to_event(codec: Codec, message: Message) -> Event:
    """Decode one message; DecodeError when it is not one of ours."""
    topic = str(message.topic())
    raw = message.value() or b""
    name, value = codec.decode(topic, raw)
    kind, stamp = message.timestamp()
    return Event(
        topic=topic,
        partition=int(message.partition() or 0),
        offset=int(message.offset() or 0),
        timestamp_ms=None if kind == TIMESTAMP_NOT_AVAILABLE else int(stamp),
        key=message.key(),
        headers=_headers(message.headers()),
        record_name=name,
        value=value,
        raw=raw,
    )


def _headers(raw: Any) -> tuple[tuple[str, bytes | None], ...]:
    pairs = raw.items() if isinstance(raw, Mapping) else raw or ()
    return tuple((str(k), v.encode() if isinstance(v, str) else v) for k, v in pairs)


# --- reading Kafka ----------------------------------------------------------------------------

Skipped = Callable[[str], None]


def topic_partitions(kafka: str) -> dict[str, int]:
    """Every topic on the cluster with its partition count; raises if Kafka does not answer."""
    # Quiet (syslog level 0): a broker that is down is reported once below, not by librdkafka
    # on every reconnection attempt.
    admin = AdminClient({"bootstrap.servers": kafka, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=KAFKA_TIMEOUT)
    except KafkaException as exc:
        raise EventToolError(
            f"Kafka at {kafka} did not answer ({exc.args[0]}); is it running? (`aion stack status`)"
        ) from exc
    return {name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None}


def check_topics(kafka: str, topics: Sequence[str]) -> list[str]:
    """The topics to read (the events topics when none is given); all must exist."""
    wanted = list(dict.fromkeys(topics)) or events_topics()
    present = topic_partitions(kafka)
    missing = [t for t in wanted if t not in present]
    if missing:
        raise EventToolError(
            f"no topic {', '.join(missing)} on Kafka at {kafka} (`aion init` creates Aion's topics)"
        )
    return wanted


def _decoded(codec: Codec, message: Message, skipped: Skipped) -> Event | None:
    try:
        return to_event(codec, message)
    except DecodeError as exc:
        skipped(f"{message.topic()}[{message.partition()}]@{message.offset()}: {exc}")
        return None


def read_events(
    kafka: str, registry: str, topics: Sequence[str], chosen: EventFilter, skipped: Skipped
) -> Iterator[Event]:
    """The matching events of each topic as it stands now (per partition in offset order);
    messages that are not ours are reported to ``skipped``, not yielded."""
    codec = Codec(registry)
    for topic in topics:
        for message in read_snapshot(kafka, topic, "events-dump", chosen.since_ms):
            event = _decoded(codec, message, skipped)
            if event is not None and chosen.matches(event):
                yield event


def _start_offsets(
    consumer: Consumer, topics: Sequence[str], since_ms: int | None, from_beginning: bool
) -> list[TopicPartition]:
    """Where tail starts: the end, the beginning, or the first record at ``since_ms`` (the end
    when there is none). Concrete offsets, not OFFSET_END: once they are assigned, nothing
    produced afterwards can be missed."""
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    for topic in topics:
        partitions = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT).topics[topic].partitions
        for p in sorted(partitions):
            tp = TopicPartition(topic, p)
            ranges[(topic, p)] = consumer.get_watermark_offsets(tp, timeout=KAFKA_TIMEOUT)
    starts = {at: low if from_beginning else high for at, (low, high) in ranges.items()}
    if since_ms is not None and starts:
        wanted = [TopicPartition(topic, p, since_ms) for topic, p in starts]
        for found in consumer.offsets_for_times(wanted, timeout=KAFKA_TIMEOUT):
            at = (found.topic, found.partition)
            starts[at] = found.offset if found.offset >= 0 else ranges[at][1]
    return [TopicPartition(topic, p, offset) for (topic, p), offset in starts.items()]


def follow(
    kafka: str,
    registry: str,
    topics: Sequence[str],
    chosen: EventFilter,
    skipped: Skipped,
    from_beginning: bool = False,
    ready: Callable[[int], None] = lambda partitions: None,
) -> Generator[Event, None, None]:
    """Matching events as they arrive, from the end (or the beginning, or ``since_ms``), until
    the caller stops iterating. Partitions are assigned by hand: no group, no commit."""
    codec = Codec(registry)
    consumer = tool_consumer(kafka, "events-tail")
    try:
        starts = _start_offsets(consumer, topics, chosen.since_ms, from_beginning)
        consumer.assign(starts)
        ready(len(starts))
        while True:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                continue
            event = _decoded(codec, message, skipped)
            if event is not None and chosen.matches(event):
                yield event
    finally:
        consumer.close()
