"""The pure parts of decision 49: sizes against limits, error classification, the rejection."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from typing import Any

import fastavro
import pytest
from aiokafka.errors import (
    InvalidTimestampError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    for_code,
)
from confluent_kafka import KafkaError as LibrdkafkaError
from confluent_kafka import KafkaException
from faust.exceptions import ProducerSendError

from commands.model import Command
from schemas import catalog
from schemas.topics import MAX_MESSAGE_BYTES, events_topic, max_message_bytes, topic
from streams.group_commit import Decided, GroupCommit
from streams.outgoing import Limits, encode_writes, misfit, prepare
from streams.plan import Emission
from streams.producibility import (
    BROKER_REFUSED,
    REASON_CHARS,
    TOO_LARGE,
    UNENCODABLE,
    broker_refused,
    fingerprint,
    is_message_refusal,
    record_size,
    refusal,
)
from streams.refusals import Remembered, refusal_event_id, rejection


def command(command_type: str = "aion.tenant.CreateTenant") -> Command:
    envelope = {
        "command_id": "c-1",
        "command_type": command_type,
        "correlation_id": "corr",
        "tenant_id": "acme",
        "aggregate_type": "tenant",
        "aggregate_id": "acme",
        "issued_at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        "actor": "ana",
    }
    return Command(command_type, envelope, {"tenant_id": "acme", "display_name": "A"})


def encode_plainly(record: str, value: dict[str, Any]) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, catalog.record(record).parsed, value)
    return b"\x00\x00\x00\x00\x01" + body.getvalue()


async def encoder(topic_name: str, record: str, value: dict[str, Any]) -> bytes:
    return encode_plainly(record, value)


def test_the_limit_is_the_smaller_of_the_producers_and_the_topics() -> None:
    tenants = events_topic("tenant")
    assert topic(tenants).kafka_config()["max.message.bytes"] == str(MAX_MESSAGE_BYTES)
    assert Limits(1_000_000).of(tenants) == 1_000_000
    assert Limits(5_000_000).of(tenants) == MAX_MESSAGE_BYTES
    assert max_message_bytes("aion-streams-aggregates-changelog") == MAX_MESSAGE_BYTES


def test_a_record_is_measured_with_its_key_headers_and_batch_overhead() -> None:
    bare = record_size(b"k", b"v" * 1000, [])
    assert bare > 1001
    assert record_size(b"k", b"v" * 1000, [("aion-type", b"x" * 100)]) > bare + 100


def test_reasons_are_cut_short() -> None:
    long = refusal(TOO_LARGE, "x" * 10_000)
    assert len(long.reason) == REASON_CHARS and long.reason.endswith("...")
    assert refusal(TOO_LARGE, "short").reason == "short"


@pytest.mark.parametrize(
    "error",
    [
        MessageSizeTooLargeError(),
        RecordListTooLargeError(),
        InvalidTimestampError(),
        for_code(10)(),  # as the sender makes it from the broker's answer
    ],
)
def test_refusals_of_the_message_itself_are_final(error: Exception) -> None:
    assert is_message_refusal(error)
    wrapped = ProducerSendError("Error while sending")
    wrapped.__cause__ = error
    assert is_message_refusal(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        KafkaTimeoutError(),
        KafkaConnectionError(),
        NotLeaderForPartitionError(),
        TopicAuthorizationFailedError(),  # refuses every message alike: an operator's matter
        RuntimeError("anything else"),
    ],
)
def test_other_failures_are_waited_out(error: Exception) -> None:
    assert not is_message_refusal(error)


def librdkafka(code: int) -> KafkaException:
    """An error as the emitter (streams/emitter.py) resolves a failed delivery with it."""
    return KafkaException(LibrdkafkaError(code))


@pytest.mark.parametrize("code", [10, 18, 32, 87])
def test_librdkafkas_refusals_of_the_message_itself_are_final(code: int) -> None:
    assert is_message_refusal(librdkafka(code))


@pytest.mark.parametrize(
    "code",
    [
        LibrdkafkaError._MSG_TIMED_OUT,
        LibrdkafkaError._TRANSPORT,
        LibrdkafkaError.NOT_LEADER_FOR_PARTITION,
        LibrdkafkaError.TOPIC_AUTHORIZATION_FAILED,
    ],
)
def test_librdkafkas_other_failures_are_waited_out(code: int) -> None:
    assert not is_message_refusal(librdkafka(code))


def test_a_librdkafka_refusal_is_named_by_its_code() -> None:
    refused = broker_refused("aion.tenant.TenantCreated", "t", librdkafka(10))
    assert refused.reason == "Kafka refused aion.tenant.TenantCreated on t: MSG_SIZE_TOO_LARGE"


def test_a_broker_refusal_reads_the_same_on_every_replay() -> None:
    one = broker_refused("aion.tenant.TenantCreated", "t", MessageSizeTooLargeError("1 bytes"))
    two = broker_refused("aion.tenant.TenantCreated", "t", MessageSizeTooLargeError("2 bytes"))
    assert one == two and one.code == BROKER_REFUSED


def emission(display_name: str = "A") -> Emission:
    envelope = {
        "event_id": "e-1",
        "event_type": "aion.tenant.TenantCreated",
        "command_id": "c-1",
        "correlation_id": "corr",
        "causation_id": "c-1",
        "tenant_id": "acme",
        "aggregate_type": "tenant",
        "aggregate_id": "acme",
        "aggregate_version": 1,
        "occurred_at": 0,
        "actor": "ana",
        "traceparent": None,
        "tracestate": None,
        "command_outcome": True,
        "outcome_events": 1,
    }
    value = {
        "envelope": envelope,
        "tenant_id": "acme",
        "display_name": display_name,
        "labels": {},
        "limits": {
            "max_agents": 10,
            "max_concurrent_tasks": 10,
            "tasks_per_minute": 60,
            "max_task_runtime_ms": 60_000,
        },
    }
    return Emission(events_topic("tenant"), "acme", "aion.tenant.TenantCreated", value)


def test_an_emission_over_the_limit_is_refused_before_anything_is_sent() -> None:
    big = emission("x" * 5_000)
    ready, refused = asyncio.run(prepare([big], encoder, {}, Limits(4_000), "t"))
    assert ready == [] and refused is not None and refused.code == TOO_LARGE
    assert "aion.tenant.TenantCreated on aion.events.tenant" in refused.reason
    ready, refused = asyncio.run(prepare([big], encoder, {}, Limits(10_000), "t"))
    assert refused is None and len(ready) == 1


def test_a_value_that_does_not_fit_its_schema_is_refused() -> None:
    broken = Emission(emission().topic, "acme", emission().record, misfit(emission().value))
    ready, refused = asyncio.run(prepare([broken], encoder, {}, Limits(10_000), "t"))
    assert ready == [] and refused is not None and refused.code == UNENCODABLE
    assert "aggregate_version" in refused.reason


def test_a_state_document_over_the_limit_is_refused_and_a_deletion_passes() -> None:
    writes, refused = encode_writes({"scheduler:acme": {"state": "x" * 5_000}}, Limits(4_000))
    assert writes == {} and refused is not None and "scheduler:acme" in refused.reason
    writes, refused = encode_writes({"queue:acme/1": None, "tenant:acme": {}}, Limits(4_000))
    assert refused is None and writes == {"queue:acme/1": None, "tenant:acme": b"{}"}


def test_the_rejection_is_small_keeps_the_state_and_remembers_the_command() -> None:
    stored = {"state": None, "recent": ["older"]}
    refused = refusal(TOO_LARGE, "TenantCreated would be 2000000 bytes")
    record, writes = rejection(command(), refused, lambda key: stored)
    assert record.record == "aion.CommandRejected" and record.key == "acme"
    assert record.value["code"] == TOO_LARGE and record.value["current_version"] == 0
    assert record.value["envelope"]["event_id"] == refusal_event_id("c-1", refused)
    assert writes == {"tenant:acme": {"state": None, "recent": ["older", "c-1"]}}
    data = encode_plainly(record.record, record.value)
    assert len(data) < 1_000


def test_another_refusal_of_the_same_command_has_another_event_id() -> None:
    one = refusal_event_id("c-1", refusal(TOO_LARGE, "a"))
    assert one == refusal_event_id("c-1", refusal(TOO_LARGE, "a"))
    assert one != refusal_event_id("c-1", refusal(BROKER_REFUSED, "a"))


def test_a_fingerprint_ignores_the_trace_context_only() -> None:
    first = emission().value
    traced = {**first, "envelope": {**first["envelope"], "traceparent": "00-ab-cd-01"}}
    other = {**first, "display_name": "B"}
    assert fingerprint(first) == fingerprint(traced) != fingerprint(other)


def test_remembered_refusals_turn_into_dead_letters_the_second_time() -> None:
    remembered = Remembered(size=2)
    refused = refusal(BROKER_REFUSED, "no")
    remembered.put("a", refused)
    assert remembered.get("a") == refused and not remembered.must_deadletter("a")
    remembered.put("a", refused)
    assert remembered.must_deadletter("a")
    remembered.put("b", refused)
    remembered.put("c", refused)
    assert remembered.get("a") is None and not remembered.must_deadletter("a")


def test_settle_finds_the_first_failed_command_in_order() -> None:
    async def run() -> tuple[int | None, list[bool]]:
        loop = asyncio.get_running_loop()
        batch = GroupCommit()
        outcomes = [[None], [MessageSizeTooLargeError(), None], [None]]
        for index, results in enumerate(outcomes):
            acks = []
            for result in results:
                future: asyncio.Future[Any] = loop.create_future()
                if result is None:
                    future.set_result("ok")
                else:
                    future.set_exception(result)
                acks.append(future)
            emissions = [emission()] * len(results)
            batch.add(Decided(None, command(), emissions, {f"k{index}": b"{}"}, acks, index))  # type: ignore[arg-type]
        failure = await batch.settle()
        flags = [ok for _, ok in batch.acknowledged_from(1)]
        return (failure.index if failure else None), flags

    index, flags = asyncio.run(run())
    assert index == 1
    assert flags == [False, True, True]


def test_the_overlay_reads_a_deletion_as_absent() -> None:
    batch = GroupCommit()
    batch.add(Decided(None, command(), [], {"queue:x": None}))  # type: ignore[arg-type]
    assert batch.read("queue:x", {"queue:x": b'{"state": 1}'}) is None
