"""The SDK's Server-Sent Events decoder and task events, alone (no server)."""

from __future__ import annotations

from aion_sdk.events import SSEDecoder, parse_events, task_event


def events(text: str) -> list[tuple[str, str, str | None]]:
    return [(e.event, e.data, e.id) for e in parse_events(text.splitlines())]


def test_an_event_has_its_name_id_and_data() -> None:
    text = 'id: 3\nevent: RunProgress\ndata: {"percent": 50.0}\n\n'
    assert events(text) == [("RunProgress", '{"percent": 50.0}', "3")]


def test_data_lines_are_joined_with_newlines() -> None:
    assert events("data: one\ndata: two\ndata:\ndata:  four\n\n") == [
        ("message", "one\ntwo\n\n four", None)
    ]


def test_comments_and_keep_alives_are_ignored() -> None:
    text = ": keep-alive\n\n: hello\nid: 1\nevent: TaskSubmitted\n: between\ndata: {}\n\n"
    assert events(text) == [("TaskSubmitted", "{}", "1")]


def test_without_a_space_after_the_colon_and_without_a_colon() -> None:
    assert events("event:x\ndata:y\n\n") == [("x", "y", None)]
    assert events("data\n\n") == [("message", "", None)]  # a field with an empty value


def test_ids_persist_and_names_reset_between_events() -> None:
    text = "id: 7\nevent: A\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"
    assert events(text) == [("A", "a", "7"), ("message", "b", "7"), ("message", "c", "")]


def test_a_block_without_data_dispatches_nothing_and_unknown_fields_are_ignored() -> None:
    assert events("event: lonely\nid: 4\n\nfoo: bar\ndata: z\n\n") == [("message", "z", "4")]


def test_an_unterminated_last_event_is_dropped() -> None:
    assert events("data: done\n\ndata: cut") == [("message", "done", None)]


def test_an_id_with_a_nul_is_ignored_and_retry_is_read() -> None:
    decoder = SSEDecoder()
    for line in ["id: 1", "data: a", ""]:
        decoder.feed(line)
    decoder.feed("id: bad\0id")
    decoder.feed("retry: 1500")
    decoder.feed("retry: soon")
    decoder.feed("data: b")
    event = decoder.feed("")
    assert event is not None and (event.id, event.retry) == ("1", 1500)


def test_crlf_line_endings() -> None:
    assert [(e.event, e.data) for e in parse_events(["event: X\r\n", "data: 1\r\n", "\r\n"])] == [
        ("X", "1")
    ]


def test_task_events_parse_their_json_and_know_the_final_one() -> None:
    text = (
        'id: 1\nevent: TaskSubmitted\ndata: {"agent_name": "echo"}\n\n'
        'id: 9\nevent: TaskSucceeded\ndata: {"output_digest": "sha256:00"}\n\n'
    )
    found = [task_event(e) for e in parse_events(text.splitlines())]
    assert [(e.id, e.type, e.final) for e in found] == [
        (1, "TaskSubmitted", False),
        (9, "TaskSucceeded", True),
    ]
    assert found[0].data == {"agent_name": "echo"}
