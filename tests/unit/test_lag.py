"""Projection lag from watermarks and committed positions."""

from __future__ import annotations

from projections.lag import lag


def test_lag_counts_what_is_left_from_the_committed_position_or_the_logs_start() -> None:
    ends = {("a", 0): (0, 10), ("a", 1): (5, 8), ("a", 2): (3, 3)}
    assert lag(ends, {}) == 10 + 3  # nothing committed: the whole retained log
    assert lag(ends, {("a", 0): 10, ("a", 1): 6}) == 0 + 2
    assert lag(ends, {("a", 1): 2}) == 10 + 3  # a position before the log's start counts from it
    assert lag(ends, {("a", 0): 12}) == 0 + 3  # never negative
