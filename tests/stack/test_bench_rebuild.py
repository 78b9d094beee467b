"""Scenario 4 of `aion bench`, quick: the core projection rebuilt into a scratch schema beside
a raw consume and COPY of the same events. It asserts no timing (benchmarks inform): the
figures are there and finite, and no scratch schema is left behind. (That ours rebuilt every
chosen event is checked by `rebuild` itself, which raises otherwise.)"""

from __future__ import annotations

import math
import uuid
from typing import Any

import psycopg

from aion.bench.rebuild import SCENARIO, SCRATCH_PREFIX, events_to_rebuild, leftovers, rebuild
from aion.bench.system import System
from aion.settings import Settings
from aion.stack.manager import Stack
from projections.core import CoreProjection
from projections.migrate import migrate
from projections.replay import TABLES, Replay


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


def indexes(conn: psycopg.Connection[Any], schema: str) -> set[tuple[str, str]]:
    rows = conn.execute(
        "select indexname, replace(indexdef, %s, 'S.') from pg_indexes"
        " where schemaname = %s and tablename = any(%s)",
        (f"{schema}.", schema, list(TABLES["core"])),
    )
    return {(str(name), str(definition)) for name, definition in rows}


def test_a_filled_shadow_has_every_index_of_the_live_tables(
    stack: Stack, settings: Settings
) -> None:
    """The replay drops the shadow's secondary indexes while it fills it and builds them after:
    a shadow swapped in must be indexed as the live tables are."""
    migrate(settings.database)
    replay = Replay(
        CoreProjection(),
        kafka=settings.kafka,
        database_url=settings.database,
        registry=settings.registry,
        shadow=f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}",
    )
    try:
        replay.create_shadow()
        ranges = events_to_rebuild(settings, 500)
        replay.fill({tp: end for tp, (_, end) in ranges.items()}, None)
        assert replay.report.events == sum(e - s for s, e in ranges.values())
        with psycopg.connect(settings.database) as conn:
            live = indexes(conn, "public")
            assert len(live) > len(TABLES["core"])  # primary keys and secondary indexes
            assert indexes(conn, replay.shadow) == live
    finally:
        replay.drop_shadow()
    assert leftovers(settings) == []
