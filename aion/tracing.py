"""Traces: where spans go, and how a trace crosses Kafka.

One command is one trace: the API's PRODUCER span writes W3C ``traceparent`` into the command
envelope (and a Kafka header); every processor continues it from the record it handles and
writes its own span's ``traceparent`` into what it produces. The envelope is the carrier that
survives everything (export, import, replay); the header is for tools that read only headers.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler

from aion.trace_file import JsonLinesSpanExporter

OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
CARRIED = ("traceparent", "tracestate")


def provider(role: str, trace_file: Path | None = None) -> TracerProvider:
    """A provider exporting by OTLP/HTTP when an endpoint is configured, and to a file if asked.

    OTEL_SERVICE_NAME wins over our ``aion-<role>`` (compose names services its own way).
    """
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": f"aion-{role}"}
    exporting = trace_file is not None or any(os.environ.get(name) for name in OTLP_ENDPOINTS)
    made = TracerProvider(resource=Resource.create(attributes), sampler=sampler(exporting))
    if any(os.environ.get(name) for name in OTLP_ENDPOINTS):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        made.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if trace_file is not None:
        # Synchronous: a test reads the file right after the work, and a killed process
        # must not take its last spans with it.
        made.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(trace_file)))
    return made


def sampler(exporting: bool) -> Sampler:
    """OTEL_TRACES_SAMPLER when set (the SDK's own variables); otherwise every trace when spans
    go somewhere, and none when they would go nowhere. An unsampled span still has ids, so the
    trace context still travels through Kafka and log lines still carry a trace id, but it
    records nothing: on the API's hot path a recorded span costs ~100 us, as much as the
    rest of the access gate (decision 40)."""
    if os.environ.get("OTEL_TRACES_SAMPLER"):
        from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

        return _get_from_env_or_default()
    return ParentBased(ALWAYS_ON if exporting else ALWAYS_OFF)


_recording = True  # real spans until configure() finds that nothing would record them


def recording(trace_file: Path | None = None) -> bool:
    """Whether spans may be recorded: they are exported, or a sampler was chosen."""
    return bool(
        trace_file is not None
        or any(os.environ.get(name) for name in OTLP_ENDPOINTS)
        or os.environ.get("OTEL_TRACES_SAMPLER")
    )


def configure(role: str, trace_file: Path | None = None) -> None:
    global _recording
    _recording = recording(trace_file)
    trace.set_tracer_provider(provider(role, trace_file))


@contextmanager
def producer_span(
    tracer: trace.Tracer, name: str, attributes: dict[str, Any]
) -> Iterator[dict[str, str]]:
    """A PRODUCER span around a send, giving the carrier to write into what is sent.

    When nothing records spans and no trace came in, only what an unsampled span would have
    carried: a fresh trace id and span id, flags 00. The SDK's sampler, span object and two
    context switches cost the API's command path ~7% of its time for a span that records
    nothing (decision 43)."""
    if _recording or trace.get_current_span().get_span_context().is_valid:
        with tracer.start_as_current_span(
            name, kind=trace.SpanKind.PRODUCER, attributes=attributes
        ):
            yield current_carrier()
        return
    trace_id = random.getrandbits(128) or 1
    span_id = random.getrandbits(64) or 1
    yield {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-00"}


def header_values(headers: Any) -> dict[str, str]:
    """Kafka headers (a list of pairs or a mapping, values bytes) as text, for the carried keys."""
    pairs: Iterable[tuple[str, Any]] = (
        headers.items() if isinstance(headers, Mapping) else (headers or [])
    )
    found = {}
    for name, value in pairs:
        if name in CARRIED and value is not None:
            found[name] = value.decode() if isinstance(value, bytes) else str(value)
    return found


def parent_context(envelope: Mapping[str, Any] | None, headers: Any = None) -> Context | None:
    """The trace context a record carries: its envelope's, else its Kafka headers'."""
    carrier = {k: str(envelope[k]) for k in CARRIED if envelope and envelope.get(k)}
    if "traceparent" not in carrier:
        carrier = header_values(headers)
    if "traceparent" not in carrier:
        return None
    return propagate.extract(carrier)


def has_parent(envelope: Mapping[str, Any] | None) -> bool:
    return bool(envelope and envelope.get("traceparent"))


def current_carrier() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span, to write into what we send."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def carry_into(envelope: dict[str, Any], carrier: Mapping[str, str]) -> None:
    envelope["traceparent"] = carrier.get("traceparent")
    envelope["tracestate"] = carrier.get("tracestate")


def kafka_attributes(
    topic: str,
    key: bytes | str | None,
    partition: int | None,
    offset: int | None,
    group: str,
    operation: str = "process",
) -> dict[str, Any]:
    """Messaging semantic-convention attributes of a Kafka record being consumed."""
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation": operation,
        "messaging.operation.type": operation,
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": group,
        "messaging.kafka.consumer.group": group,
    }
    if key is not None:
        attributes["messaging.kafka.message.key"] = (
            key.decode(errors="replace") if isinstance(key, bytes) else key
        )
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
        attributes["messaging.kafka.destination.partition"] = partition
    if offset is not None:
        attributes["messaging.kafka.message.offset"] = offset
        attributes["messaging.kafka.offset"] = offset
    return attributes
