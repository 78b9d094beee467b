"""`aion events`' pure parts: options, filters, JSON rendering and the export file format."""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import fastavro
import pytest
from typer.testing import CliRunner

from aion.cli import app
from aion.event_archive import (
    EXPORT_SCHEMA,
    FORMAT_VERSION,
    PARSED_EXPORT_SCHEMA,
    export_record,
    parse_topic_map,
    plan_import,
    read_export,
    target_partition,
)
from aion.event_tools import (
    BadOption,
    Event,
    EventFilter,
    EventToolError,
    event_filter,
    events_topics,
    json_line,
    jsonable,
    parse_since,
    resolve_records,
    topic_aggregate,
)
from schemas import catalog

NOW_MS = 1_800_000_000_000
OCCURRED = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
SUCCEEDED = "aion.task.TaskSucceeded"


def envelope(tenant: str = "acme", aggregate: str = "task", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "event_type": SUCCEEDED,
        "command_id": "c-1",
        "correlation_id": "c-1",
        "causation_id": "c-1",
        "tenant_id": tenant,
        "aggregate_type": aggregate,
        "aggregate_id": f"{tenant}/t-1",
        "aggregate_version": 7,
        "occurred_at": OCCURRED,
        "actor": "kernel",
        "traceparent": None,
        "tracestate": None,
        "command_outcome": True,
        "outcome_events": 1,
        **extra,
    }


def succeeded(tenant: str = "acme", aggregate: str = "task") -> dict[str, Any]:
    return {"envelope": envelope(tenant, aggregate), "task_id": "t-1", "run_id": "t-1.1"}


def framed(record_name: str, value: dict[str, Any], schema_id: int = 42) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, catalog.record(record_name).parsed, value)
    return b"\x00" + struct.pack(">I", schema_id) + body.getvalue()


def event(
    value: dict[str, Any] | None = None,
    topic: str = "aion.events.task",
    record_name: str = SUCCEEDED,
    timestamp_ms: int | None = NOW_MS,
    partition: int = 3,
) -> Event:
    value = succeeded() if value is None else value
    return Event(
        topic=topic,
        partition=partition,
        offset=17,
        timestamp_ms=timestamp_ms,
        key=b"acme/t-1",
        headers=(("aion-type", record_name.encode()), ("empty", None)),
        record_name=record_name,
        value=value,
        raw=framed(record_name, value) if record_name == SUCCEEDED else b"\x00\x00\x00\x00\x01",
    )


# --- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "back_ms"),
    [("30s", 30_000), ("30m", 1_800_000), ("2h", 7_200_000), ("7d", 604_800_000),
     ("1h30m", 5_400_000), ("1w", 604_800_000)],
)  # fmt: skip
def test_a_duration_counts_back_from_now(text: str, back_ms: int) -> None:
    assert parse_since(text, now_ms=NOW_MS) == NOW_MS - back_ms


def test_an_iso_time_is_taken_as_it_is_and_utc_when_it_names_no_zone() -> None:
    assert parse_since("2026-01-02T03:04:05Z") == int(
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp() * 1000
    )
    assert parse_since("2026-01-02T03:04:05") == parse_since("2026-01-02T03:04:05+00:00")
    assert parse_since("2026-01-02T05:04:05+02:00") == parse_since("2026-01-02T03:04:05Z")


@pytest.mark.parametrize("text", ["2x", "", "-1h", "0m", "yesterday", "h2", "1.5h"])
def test_a_bad_since_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 30m, 2h, 7d.*ISO 8601"):
        parse_since(text)


def test_record_types_by_full_or_short_name() -> None:
    assert resolve_records(["TaskSucceeded"]) == {SUCCEEDED}
    assert resolve_records([SUCCEEDED, "CommandRejected", "RunFailed"]) == {
        SUCCEEDED,
        "aion.CommandRejected",
        "aion.run.RunFailed",
    }
    assert resolve_records([]) == frozenset()


def test_an_unknown_record_type_names_the_close_ones_and_every_one() -> None:
    with pytest.raises(BadOption) as raised:
        resolve_records(["TaskSucceded"])
    assert raised.value.option == "--type"
    message = str(raised.value)
    assert "did you mean TaskSucceeded" in message
    assert all(name in message for name in catalog.all_records())


def test_the_filter_options_name_the_option_that_is_wrong() -> None:
    with pytest.raises(BadOption) as since:
        event_filter(None, None, None, "soon")
    assert since.value.option == "--since"
    with pytest.raises(BadOption) as aggregate:
        event_filter(None, "tasks", None, None)
    assert aggregate.value.option == "--aggregate"
    assert "task" in str(aggregate.value)
    built = event_filter("acme", "task", ["TaskSucceeded"], "1h")
    assert (built.tenant, built.aggregate, built.records) == ("acme", "task", {SUCCEEDED})
    assert built.since_ms is not None


def test_topic_maps() -> None:
    assert parse_topic_map(["a=b", " c = d "]) == {"a": "b", "c": "d"}
    for bad in (["a"], ["=b"], ["a="], ["a=b", "a=c"]):
        with pytest.raises(ValueError):
            parse_topic_map(bad)


# --- filters ----------------------------------------------------------------------------------


def test_the_events_topics_and_their_aggregates() -> None:
    assert "aion.events.task" in events_topics()
    assert not {"aion.commands", "aion.kernel.dispatch", "aion.deadletter"} & set(events_topics())
    assert topic_aggregate("aion.events.task") == "task"
    assert topic_aggregate("it-1234.aion.events.task") == "task"
    assert topic_aggregate("aion.commands") is None
    assert topic_aggregate("aion.events.") is None


def test_filters_look_at_the_decoded_record() -> None:
    acme = event()
    assert EventFilter().matches(acme)
    assert EventFilter(tenant="acme").matches(acme)
    assert not EventFilter(tenant="acm").matches(acme)
    assert not EventFilter(tenant="acme").matches(event(succeeded("other")))
    assert EventFilter(records=frozenset({SUCCEEDED})).matches(acme)
    assert not EventFilter(records=frozenset({"aion.task.TaskFailed"})).matches(acme)
    assert EventFilter(since_ms=NOW_MS).matches(acme)
    assert not EventFilter(since_ms=NOW_MS + 1).matches(acme)
    combined = EventFilter("acme", "task", frozenset({SUCCEEDED}), NOW_MS - 1)
    assert combined.matches(acme)
    assert not combined.matches(event(succeeded("other")))


def test_the_aggregate_is_the_topics_or_the_envelopes() -> None:
    on_renamed_topic = event(succeeded(aggregate="scheduler"), topic="it-9.aion.events.task")
    assert EventFilter(aggregate="task").matches(on_renamed_topic)
    assert EventFilter(aggregate="scheduler").matches(on_renamed_topic)
    assert not EventFilter(aggregate="agent").matches(on_renamed_topic)
    off_topic = event(succeeded(aggregate="task"), topic="aion.commands")
    assert EventFilter(aggregate="task").matches(off_topic)


def test_a_record_without_an_envelope_is_filtered_by_its_own_tenant() -> None:
    dispatch = event({"tenant_id": "acme", "run_id": "t-1.1"}, "aion.kernel.dispatch", "x.Run")
    assert EventFilter(tenant="acme").matches(dispatch)
    assert not EventFilter(tenant="other").matches(dispatch)
    assert not EventFilter(aggregate="task").matches(dispatch)
    nothing = event({"n": 1}, "aion.kernel.dispatch", "x.Run")
    assert not EventFilter(tenant="acme").matches(nothing)


# --- JSON -------------------------------------------------------------------------------------


def test_logical_types_and_bytes_render_as_json() -> None:
    value = {
        "at": OCCURRED,
        "micro": datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC),
        "day": date(2026, 1, 2),
        "amount": Decimal("12.50"),
        "id": UUID("12345678-1234-5678-1234-567812345678"),
        "raw": b"\x00\xff",
        "nested": [{"at": OCCURRED}, None, 1, "s", True],
    }
    assert jsonable(value) == {
        "at": "2026-01-02T03:04:05.678+00:00",
        "micro": "2026-01-02T03:04:05.678901+00:00",
        "day": "2026-01-02",
        "amount": "12.50",
        "id": "12345678-1234-5678-1234-567812345678",
        "raw": "AP8=",
        "nested": [{"at": "2026-01-02T03:04:05.678+00:00"}, None, 1, "s", True],
    }


def test_an_event_is_one_json_line_with_its_position() -> None:
    line = json_line(event())
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed == {
        "topic": "aion.events.task",
        "partition": 3,
        "offset": 17,
        "timestamp": "2027-01-15T08:00:00.000+00:00",
        "key": "acme/t-1",
        "record": SUCCEEDED,
        "value": {**jsonable(succeeded())},
    }
    assert parsed["value"]["envelope"]["occurred_at"] == "2026-01-02T03:04:05.678+00:00"
    assert json.loads(json_line(event(timestamp_ms=None)))["timestamp"] is None


# --- the export file --------------------------------------------------------------------------


def write_export(path: Path, records: list[dict[str, Any]], **metadata: str) -> Path:
    with path.open("wb") as out:
        fastavro.writer(
            out,
            PARSED_EXPORT_SCHEMA,
            records,
            codec="deflate",
            metadata={"aion.export.format": FORMAT_VERSION, **metadata},
        )
    return path


def test_the_export_schema_is_a_self_contained_avro_record() -> None:
    assert fastavro.parse_schema(json.loads(json.dumps(EXPORT_SCHEMA)))
    fields = [f["name"] for f in EXPORT_SCHEMA["fields"]]
    assert fields == [
        "topic", "partition", "offset", "timestamp_ms", "key", "headers", "record_name",
        "schema_id", "schema", "payload",
    ]  # fmt: skip


def test_an_exported_event_reads_back_to_the_same_value_with_its_own_schema(
    tmp_path: Path,
) -> None:
    original = event()
    writer_text = catalog.record(SUCCEEDED).text
    path = write_export(tmp_path / "one.avro", [export_record(original, writer_text)])
    [record] = list(read_export(path))
    assert (record["topic"], record["partition"], record["offset"]) == ("aion.events.task", 3, 17)
    assert (record["timestamp_ms"], record["key"]) == (NOW_MS, b"acme/t-1")
    assert record["headers"] == [
        {"key": "aion-type", "value": SUCCEEDED.encode()},
        {"key": "empty", "value": None},
    ]
    assert (record["record_name"], record["schema_id"]) == (SUCCEEDED, 42)
    assert record["payload"] == original.raw[5:]
    # What import relies on: the body and the schema text alone give the value back.
    writer = fastavro.parse_schema(json.loads(record["schema"]))
    assert fastavro.schemaless_reader(io.BytesIO(record["payload"]), writer) == succeeded()


def test_the_import_plan_maps_topics_and_registers_each_schema_once(tmp_path: Path) -> None:
    text = catalog.record(SUCCEEDED).text
    records = [
        export_record(event(partition=p, topic=topic), text)
        for topic, p in (("aion.events.task", 1), ("aion.events.task", 5), ("aion.events.x", 0))
    ]
    path = write_export(tmp_path / "many.avro", records)
    plan = plan_import(path, {"aion.events.task": "copy.aion.events.task"})
    assert plan.partitions == {"copy.aion.events.task": 5, "aion.events.x": 0}
    assert plan.schemas == {
        ("copy.aion.events.task", SUCCEEDED, text): 42,
        ("aion.events.x", SUCCEEDED, text): 42,
    }
    assert plan.sources == {"aion.events.task", "aion.events.x"}


def test_events_go_to_the_same_partition_when_the_target_has_it() -> None:
    assert target_partition(5, 6) == 5
    assert target_partition(0, 1) == 0
    assert target_partition(5, 5) is None  # by key


def test_a_file_that_is_not_an_export_is_refused_clearly(tmp_path: Path) -> None:
    text = tmp_path / "notes.avro"
    text.write_text("not avro at all")
    with pytest.raises(EventToolError, match=r"cannot read .* as an Aion events export"):
        list(read_export(text))
    other = tmp_path / "other.avro"
    schema = {"type": "record", "name": "X", "fields": [{"name": "a", "type": "int"}]}
    with other.open("wb") as out:
        fastavro.writer(out, fastavro.parse_schema(schema), [{"a": 1}])
    with pytest.raises(EventToolError, match="not an Aion events export"):
        list(read_export(other))
    unversioned = write_export(tmp_path / "v0.avro", [], **{"aion.export.format": "0"})
    with pytest.raises(EventToolError, match=r"aion\.export\.format is '0'"):
        list(read_export(unversioned))


# --- the CLI's usage errors (no stack needed: they are refused before any connection) ---------


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["events", *args])


def test_the_cli_refuses_a_bad_since_type_aggregate_or_topic_map() -> None:
    since = invoke("dump", "--since", "2x")
    assert since.exit_code == 2
    assert "--since" in since.output and "ISO 8601" in since.output
    kind = invoke("tail", "--type", "TaskSucceded")
    assert kind.exit_code == 2
    assert "TaskSucceeded" in kind.output and "aion.tenant.TenantCreated" in kind.output
    aggregate = invoke("export", "--to", "x.avro", "--aggregate", "tasks")
    assert aggregate.exit_code == 2
    assert "the aggregates are" in aggregate.output
    mapping = invoke("import", "--from", __file__, "--topic-map", "nope")
    assert mapping.exit_code == 2
    assert "OLD=NEW" in mapping.output


def test_the_cli_refuses_a_missing_or_unreadable_import_file(tmp_path: Path) -> None:
    missing = invoke("import", "--from", str(tmp_path / "missing.avro"))
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
    garbage = tmp_path / "garbage.avro"
    garbage.write_bytes(b"\x00\x01\x02")
    unreadable = invoke("import", "--from", str(garbage))
    assert unreadable.exit_code == 1
    assert "as an Aion events export" in " ".join(unreadable.output.split())
