"""JSON logs carry correlation ids, spans continue the trace a record carries, the trace file."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
from opentelemetry import trace

from aion import telemetry, tracing
from aion.trace_file import read_spans

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def formatted(message: str) -> dict[str, object]:
    record = logging.LogRecord("aion.test", logging.INFO, __file__, 1, message, None, None)
    return dict(json.loads(telemetry.JsonFormatter("worker").format(record)))


def test_log_lines_carry_the_ids_of_the_record_being_handled() -> None:
    assert "command_id" not in formatted("before")
    envelope = {"command_id": "c-1", "correlation_id": "k-1", "tenant_id": "acme"}
    with telemetry.log_context(**telemetry.envelope_ids(envelope)):
        line = formatted("inside")
        with telemetry.log_context(run_id="r-1"):
            nested = formatted("nested")
    assert (line["command_id"], line["correlation_id"], line["role"]) == ("c-1", "k-1", "worker")
    assert (nested["command_id"], nested["run_id"]) == ("c-1", "r-1")
    assert "command_id" not in formatted("after")


def test_correlation_ids_do_not_leak_between_threads() -> None:
    seen: dict[str, object] = {}

    def other() -> None:
        seen.update(formatted("other thread"))

    with telemetry.log_context(command_id="mine"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert "command_id" not in seen


def test_a_span_continues_the_envelope_trace_and_is_written_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    provider = tracing.provider("worker", path)
    tracer = provider.get_tracer("test")
    envelope = {"traceparent": PARENT, "tracestate": None}
    with tracer.start_as_current_span(
        "process aion.commands",
        context=tracing.parent_context(envelope),
        kind=trace.SpanKind.CONSUMER,
        attributes=tracing.kafka_attributes("aion.commands", b"acme", 3, 42, "aion-streams"),
    ):
        carrier = tracing.current_carrier()
        line = formatted("handled")
    provider.shutdown()
    [span] = read_spans(path)
    assert span["trace_id"] == PARENT.split("-")[1] == line["trace_id"]
    assert span["parent_span_id"] == PARENT.split("-")[2]
    assert (span["service"], span["kind"]) == ("aion-worker", "CONSUMER")
    attributes = span["attributes"]
    assert attributes["messaging.system"] == "kafka"
    assert attributes["messaging.kafka.message.key"] == "acme"
    assert attributes["messaging.kafka.message.offset"] == 42
    # what the processor writes into its emissions names its own span, in the same trace
    assert carrier["traceparent"] == f"00-{span['trace_id']}-{span['span_id']}-01"


def test_the_header_is_the_fallback_carrier() -> None:
    headers = [("aion-type", b"x"), ("traceparent", PARENT.encode())]
    context = tracing.parent_context({"traceparent": None}, headers)
    assert context is not None
    span = trace.get_current_span(context).get_span_context()
    assert f"{span.trace_id:032x}" == PARENT.split("-")[1]
    assert tracing.parent_context({}, {"aion-type": b"x"}) is None


def test_otel_service_name_overrides_the_role(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "aion-kernel-7")
    provider = tracing.provider("kernel", tmp_path / "t.jsonl")
    assert provider.resource.attributes["service.name"] == "aion-kernel-7"
    provider.shutdown()


def test_a_producer_span_that_records_nothing_still_starts_a_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an exporter: ids only, in the W3C format, flags 00 (unsampled), new each time;
    with one: a real span whose ids are the carrier's."""
    tracer = tracing.provider("serve", None).get_tracer("test")
    monkeypatch.setattr(tracing, "_recording", False)
    carriers = []
    for _ in range(2):
        with tracing.producer_span(tracer, "send aion.commands", {}) as carrier:
            carriers.append(carrier["traceparent"])
    for traceparent in carriers:
        version, trace_id, span_id, flags = traceparent.split("-")
        assert (version, flags, len(trace_id), len(span_id)) == ("00", "00", 32, 16)
        assert int(trace_id, 16) and int(span_id, 16)
        assert tracing.parent_context({"traceparent": traceparent}) is not None
    assert carriers[0] != carriers[1]

    path = tmp_path / "traces.jsonl"
    provider = tracing.provider("serve", path)
    monkeypatch.setattr(tracing, "_recording", tracing.recording(path))
    with tracing.producer_span(provider.get_tracer("test"), "send aion.commands", {}) as carrier:
        pass
    provider.shutdown()
    [span] = read_spans(path)
    assert carrier["traceparent"].startswith(f"00-{span['trace_id']}-{span['span_id']}-")
    assert span["kind"] == "PRODUCER"
