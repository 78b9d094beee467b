"""Scenario 4 of `aion bench`, quick: the core projection rebuilt into a scratch schema beside
a raw consume and COPY of the same events. It asserts no timing (benchmarks inform): the
figures are there and finite, and no scratch schema is left behind. (That ours rebuilt every
chosen event is checked by `rebuild` itself, which raises otherwise.)"""

from __future__ import annotations

import math

from aion.bench.rebuild import SCENARIO, leftovers, rebuild
from aion.bench.system import System
from aion.settings import Settings
from aion.stack.manager import Stack


def test_a_quick_rebuild_reports_finite_figures_and_leaves_nothing_behind(
    stack: Stack, settings: Settings
) -> None:
    before = leftovers(settings)
    figures = rebuild(System(settings, api=""), trials=1, quick=True)
    assert {f.scenario for f in figures} == {SCENARIO}
    [ours] = [f for f in figures if f.baseline]
    assert len(ours.ours) == len(ours.baseline) == 1
    for value in (*ours.ours, *ours.baseline):
        assert math.isfinite(value) and value > 0
    assert ours.ratio is not None and math.isfinite(ours.ratio)
    assert ours.met is not None  # the target is checked (and shown), never asserted
    assert "events" in ours.note
    assert leftovers(settings) == before == []
