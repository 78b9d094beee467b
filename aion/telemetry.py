"""Logging and tracing set-up for every Aion process.

Logs are JSON lines (one object per record, with the process role) so that a log shipper can
index them; traces use OpenTelemetry's SDK with W3C trace context, which the API writes into
every command envelope.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

NOISY = ("aiokafka", "faust", "mode", "httpx", "httpx2", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "role": self.role,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = f"{span.trace_id:032x}"
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def json_handler(role: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(role))
    return handler


def quiet_noisy_loggers(level: int = logging.INFO) -> None:
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, level))


def setup(role: str, level: str = "INFO") -> None:
    handler = json_handler(role)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_noisy_loggers(root.level)
    trace.set_tracer_provider(
        TracerProvider(resource=Resource.create({"service.name": f"aion-{role}"}))
    )
