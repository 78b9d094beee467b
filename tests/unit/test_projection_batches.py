"""Pure pieces of the batched projection path and of the rebuild benchmark."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aion.bench.rebuild import choose
from projections.bulk import dumps
from projections.decoding import _same
from schemas import catalog


def test_nul_becomes_the_replacement_character_in_every_string_but_escapes_stay() -> None:
    rows = [
        {"text": "a\x00b", "key\x00": ["\x00", {"deep": "x\x00"}]},
        {"literal": "\\u0000", "escaped then nul": "\\\x00", "two": "\\\\\x00"},
    ]
    assert json.loads(dumps(rows)) == [
        {"text": "a\ufffdb", "key\ufffd": ["\ufffd", {"deep": "x\ufffd"}]},
        {"literal": "\\u0000", "escaped then nul": "\\\ufffd", "two": "\\\\\ufffd"},
    ]


def test_times_are_written_in_full() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert json.loads(dumps([{"at": at}])) == [{"at": "2026-01-02T03:04:05.678901+00:00"}]


def test_a_schema_is_read_without_resolution_only_when_nothing_but_docs_differ() -> None:
    ours = json.loads(catalog.record("aion.tenant.UserAdded").text)
    written = json.loads(json.dumps(ours))
    written["doc"] = "another doc"
    written["name"] = f"{ours.get('namespace', 'aion.tenant')}.UserAdded"
    written.pop("namespace", None)
    assert _same(ours, written)
    fewer = {**written, "fields": written["fields"][:-1]}
    assert not _same(ours, fewer)
    retyped = json.loads(json.dumps(written))
    retyped["fields"][-1]["type"] = "long"
    assert not _same(ours, retyped)


def test_the_rebuild_takes_the_small_topics_whole_then_the_large_ones_from_their_start() -> None:
    ends = {
        ("big", 0): (10, 1010),
        ("big", 1): (0, 1000),
        ("small", 0): (5, 7),
        ("small", 1): (0, 3),
        ("empty", 0): (4, 4),
    }
    assert choose(ends, 1500) == {
        ("small", 0): (5, 7),
        ("small", 1): (0, 3),
        ("big", 0): (10, 1010),
        ("big", 1): (0, 495),
    }
    assert sum(e - s for s, e in choose(ends, 4).values()) == 4
