"""Live streams are counted per caller and per process (issue 17, finding 14); the stack test
``tests/stack/test_live_stream_cap.py`` makes the same attack over HTTP."""

from __future__ import annotations

import pytest

from api.live_streams import StreamSlots
from api.problems import Problem


def test_a_caller_past_its_cap_gets_429_with_retry_after() -> None:
    slots = StreamSlots(per_caller=2, total=10)
    held = [slots.take("sub:mallory"), slots.take("sub:mallory")]
    with pytest.raises(Problem) as refused:
        slots.take("sub:mallory")
    assert refused.value.status == 429 and refused.value.code == "too-many-streams"
    assert int(refused.value.headers["Retry-After"]) > 0
    assert slots.take("sub:alice").caller == "sub:alice"  # others are not affected
    held[0].release()
    assert slots.take("sub:mallory").caller == "sub:mallory"  # a slot given back is free


def test_a_slot_given_back_twice_counts_once() -> None:
    slots = StreamSlots(per_caller=1, total=10)
    slot = slots.take("sub:a")
    slot.release()
    slot.release()
    again = slots.take("sub:a")
    with pytest.raises(Problem):
        slots.take("sub:a")
    again.release()
    assert dict(slots.held) == {}


def test_the_process_cap_is_a_503() -> None:
    slots = StreamSlots(per_caller=5, total=3)
    for caller in ("sub:a", "sub:b", "sub:c"):
        slots.take(caller)
    with pytest.raises(Problem) as refused:
        slots.take("sub:d")
    assert refused.value.status == 503 and "Retry-After" in refused.value.headers
