"""Whether a command's effects can be produced, and what to do when the broker says no.

Pure: the command processor asks these questions (decision 49). A message that is too large or
a value that does not fit its schema is found before anything of the command is sent, from the
encoded bytes and the real limits; a broker refusal after sending is classified here as one
that retrying cannot fix (the message itself is refused) or one that waiting may fix (the
broker, the network, a timeout, or a cluster condition that refuses every message alike).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import (
    InvalidTimestampError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from confluent_kafka import KafkaError as LibrdkafkaError
from confluent_kafka import KafkaException

REASON_CHARS = 500  # a refusal's reason is cut to this: the rejection must stay small
CONFLICT = "conflict"  # re-planned after a refusal, it would change what the broker holds
TOO_LARGE = "too_large"
UNENCODABLE = "unencodable"
BROKER_REFUSED = "broker_refused"
# Broker error codes that refuse the message itself: sending it again gets the same answer.
# 10 MESSAGE_TOO_LARGE, 18 RECORD_LIST_TOO_LARGE, 32 INVALID_TIMESTAMP. (87 INVALID_RECORD
# reaches us from aiokafka as UnknownError, without its code: it is waited out.)
MESSAGE_REFUSALS = frozenset({10, 18, 32})
# The same refusals as librdkafka reports them (streams/emitter.py), with 87 INVALID_RECORD, which
# it does name (a message over the client's own limit is refused at once, with code 10).
LIBRDKAFKA_REFUSALS = frozenset({10, 18, 32, 87})
REFUSAL_TYPES = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    InvalidTimestampError,
)


@dataclass(frozen=True)
class Refusal:
    """Why a command's effects cannot be produced: a rejection code and a short reason."""

    code: str
    reason: str


class Unproducible(Exception):
    """A command dead-lettered because neither its effects nor its rejection can be produced."""

    def __init__(self, refused: Refusal) -> None:
        super().__init__(f"{refused.code}: {refused.reason}")
        self.refused = refused


def refusal(code: str, reason: str) -> Refusal:
    """A refusal whose reason is never long (it goes into a record that must be producible)."""
    cut = reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 3] + "..."
    return Refusal(code, cut)


def record_size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    """The bytes a record takes in its own batch: what both the producer's max request size and
    the broker's max.message.bytes are compared with (aiokafka's own estimate)."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers))


def too_large(what: str, where: str, size: int, limit: int) -> Refusal | None:
    """A refusal when ``size`` exceeds ``limit``: e.g. an event on its topic, or a document."""
    if size <= limit:
        return None
    return refusal(TOO_LARGE, f"{what} on {where} would be {size} bytes; the limit is {limit}")


def unencodable(record: str, topic: str, error: Exception) -> Refusal:
    return refusal(UNENCODABLE, f"{record} for {topic} does not fit its schema: {error}")


def root_error(error: BaseException) -> BaseException:
    """The Kafka client's error under the wrappers (Faust's ProducerSendError)."""
    seen = error
    while not isinstance(seen, KafkaError) and seen.__cause__ is not None:
        seen = seen.__cause__
    return seen


def is_message_refusal(error: BaseException) -> bool:
    """True when the broker (or the client, for its max request size) refused this message for
    what it is: retrying it can only fail again. Timeouts, unavailable brokers and refusals of
    every message alike (authorization, unknown topic) are not: they are waited out."""
    cause = root_error(error)
    if isinstance(cause, KafkaException) and isinstance(cause.args[0], LibrdkafkaError):
        return cause.args[0].code() in LIBRDKAFKA_REFUSALS
    if isinstance(cause, KafkaTimeoutError):
        return False
    if isinstance(cause, REFUSAL_TYPES):
        return True
    return isinstance(cause, KafkaError) and getattr(cause, "errno", None) in MESSAGE_REFUSALS


def broker_refused(record: str, topic: str, error: BaseException) -> Refusal:
    cause = root_error(error)
    name = type(cause).__name__
    if isinstance(cause, KafkaException) and isinstance(cause.args[0], LibrdkafkaError):
        name = str(cause.args[0].name())
    # The client's text carries no size: the broker's answer is the same on every replay.
    return refusal(BROKER_REFUSED, f"Kafka refused {record} on {topic}: {name}")


def fingerprint(value: dict[str, Any]) -> str:
    """What an event says, without its trace context (a new span on every attempt): two
    messages with one event id must have one fingerprint."""
    envelope = {
        k: v for k, v in value["envelope"].items() if k not in ("traceparent", "tracestate")
    }
    body = {**value, "envelope": envelope}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
