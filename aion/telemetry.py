"""Logging and tracing set-up for every Aion process.

Logs are JSON lines (one object per record, with the process role) so that a log shipper can
index them. A record logged while a processor handles a command or an event also carries that
command's ``command_id`` and ``correlation_id`` (context variables, so concurrent handlers in
threads or asyncio tasks never mix them up) and the active span's ``trace_id``: the three ways
to find every line about one request. Traces are set up by ``aion.tracing``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from opentelemetry import trace

from aion import tracing

NOISY = ("aiokafka", "faust", "mode", "httpx", "httpx2", "uvicorn.access")
CORRELATION_FIELDS = ("command_id", "correlation_id")

_correlation: ContextVar[Mapping[str, str] | None] = ContextVar("aion_correlation", default=None)


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """While inside, every log record of this thread or task carries these ids (None: left out)."""
    values = {k: str(v) for k, v in ids.items() if v is not None}
    token = _correlation.set({**(_correlation.get() or {}), **values})
    try:
        yield
    finally:
        _correlation.reset(token)


def envelope_ids(envelope: Mapping[str, Any] | None) -> dict[str, Any]:
    """The correlation fields of a command or event envelope."""
    return {name: (envelope or {}).get(name) for name in CORRELATION_FIELDS}


def correlation() -> Mapping[str, str]:
    return _correlation.get() or {}


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
            entry["span_id"] = f"{span.span_id:016x}"
        entry.update(correlation())
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


def setup(role: str, level: str = "INFO", trace_file: Path | None = None) -> None:
    handler = json_handler(role)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_noisy_loggers(root.level)
    tracing.configure(role, trace_file)
