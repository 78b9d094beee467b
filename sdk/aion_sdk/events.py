"""Server-Sent Events: a small decoder of the WHATWG event-stream format, and the task events
the API streams on ``GET /v1/tenants/{t}/tasks/{task}/events``.

The decoder is fed line by line (httpx splits lines on CRLF, LF or CR), so it never buffers a
whole stream; it is pure, so that the format's corner cases are tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

# The task events after which the API ends the stream (api/live.py).
FINAL_EVENTS = frozenset(
    {"TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskCancelled", "TaskRejected"}
)


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: ``event`` defaults to ``message``; ``id`` is the last id seen on
    the stream (ids persist across events, as the format says); ``retry`` is milliseconds."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSEDecoder:
    """Feed it lines without their line ending; it returns an event at each blank line that
    ends one. Comment lines (``:`` first) are ignored; unknown fields too."""

    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _retry: int | None = None
    last_event_id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event, retry = self._data, self._event, self._retry
        self._data, self._event, self._retry = [], "", None
        if not data:
            return None  # a block without data dispatches nothing (the format's rule)
        return ServerSentEvent("\n".join(data), event or "message", self.last_event_id, retry)


def parse_events(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Every event of a stream's lines; an unterminated last block is dropped (the format's
    rule: a stream cut in the middle of an event does not dispatch it)."""
    decoder = SSEDecoder()
    for line in lines:
        event = decoder.feed(line.rstrip("\r\n"))
        if event is not None:
            yield event


@dataclass(frozen=True)
class TaskEvent:
    """One event of a task: ``id`` is the task's version after it (pass it as
    ``last_event_id`` to resume after it), ``type`` the event's name (``RunProgress``),
    ``data`` its fields."""

    id: int
    type: str
    data: dict[str, Any]

    @property
    def final(self) -> bool:
        """True for the task's last event: the stream ends after it."""
        return self.type in FINAL_EVENTS


def task_event(event: ServerSentEvent) -> TaskEvent:
    """A task event from its SSE form (``id`` an integer, ``data`` a JSON object)."""
    data = event.json()
    return TaskEvent(
        int(event.id or 0), event.event, data if isinstance(data, dict) else {"value": data}
    )
