"""List queries: scoping, filters, keyset cursors and their errors, without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.listing import Listing, decode_cursor, encode_cursor, parse_limit
from api.problems import Problem

TASKS = Listing(
    table="tasks",
    columns=("task_id", "status", "submitted_at"),
    order=("submitted_at", "task_id"),
    scope={"tenant": "tenant_id"},
    filters={"status": "status", "agent": "agent_name"},
    descending=True,
)


def test_a_list_is_scoped_by_the_path_and_filtered_by_known_parameters_only() -> None:
    sql, values, limit = TASKS.query({"tenant": "acme"}, {"status": "running", "evil": "1"})
    assert sql == (
        "select task_id, status, submitted_at from tasks where tenant_id = %s and status = %s"
        " order by submitted_at desc, task_id desc limit 51"
    )
    assert (values, limit) == (["acme", "running"], 50)


def test_the_cursor_continues_after_the_last_row_in_the_lists_order() -> None:
    at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    rows = [{"task_id": f"t{i}", "status": "x", "submitted_at": at} for i in range(3)]
    page = TASKS.page(rows, 2)
    assert [i["task_id"] for i in page["items"]] == ["t0", "t1"]
    assert page["items"][0]["submitted_at"] == "2026-11-26T12:00:00+00:00"
    sql, values, _ = TASKS.query({"tenant": "acme"}, {"cursor": page["next_cursor"]})
    assert "(submitted_at, task_id) < (%s, %s)" in sql
    assert values == ["acme", "2026-11-26T12:00:00+00:00", "t1"]
    assert TASKS.page(rows[:2], 2)["next_cursor"] is None  # no more rows: no cursor


def test_ascending_lists_compare_the_other_way() -> None:
    agents = Listing("agents", ("agent_name",), ("agent_name",), {"tenant": "tenant_id"})
    sql, values, _ = agents.query({"tenant": "a"}, {"cursor": encode_cursor(["m"]), "limit": "2"})
    assert "(agent_name) > (%s)" in sql and sql.endswith("order by agent_name limit 3")
    assert values == ["a", "m"]


@pytest.mark.parametrize("raw", ["0", "201", "-1", "ten", "1.5", ""])
def test_a_bad_limit_is_a_422_naming_it(raw: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_limit(raw)
    assert (caught.value.status, caught.value.field) == (422, "limit")


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", encode_cursor(["only one"]), "e30"])
def test_a_forged_or_foreign_cursor_is_a_400_naming_it(cursor: str) -> None:
    with pytest.raises(Problem) as caught:
        decode_cursor(cursor, 2)
    assert (caught.value.status, caught.value.field) == (400, "cursor")


def test_cursors_round_trip() -> None:
    assert decode_cursor(encode_cursor(["2026-01-01T00:00:00+00:00", "t-1"]), 2) == [
        "2026-01-01T00:00:00+00:00",
        "t-1",
    ]
