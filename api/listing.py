"""Lists over the read models: filters, keyset (cursor) pagination, and their SQL.

A cursor is the last row's sort key, opaque to the caller (base64url JSON): the next page is
"rows after this key" in the list's order, so pages stay stable while rows are added (no
offsets that shift). Every list is scoped by the path (the tenant, maybe a task): a row of
another tenant can never be reached by changing a filter or a cursor.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from api.problems import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class Listing:
    """One list endpoint over one table."""

    table: str
    columns: tuple[str, ...]  # what each item holds
    order: tuple[str, ...]  # the sort key, unique per scope (the last column breaks ties)
    scope: Mapping[str, str]  # path parameter -> column, e.g. {"tenant": "tenant_id"}
    filters: Mapping[str, str] = field(default_factory=dict)  # query parameter -> column
    descending: bool = False

    def query(
        self, path: Mapping[str, str], params: Mapping[str, str]
    ) -> tuple[str, list[Any], int]:
        """The SQL, its parameters, and the page size (one more row is fetched to know if
        there is a next page)."""
        limit = parse_limit(params.get("limit"))
        where, values = [], []
        for name, column in self.scope.items():
            where.append(f"{column} = %s")
            values.append(path[name])
        for name, column in self.filters.items():
            if name in params:
                where.append(f"{column} = %s")
                values.append(params[name])
        if params.get("cursor"):
            after = decode_cursor(params["cursor"], len(self.order))
            sign = "<" if self.descending else ">"
            where.append(f"({', '.join(self.order)}) {sign} ({', '.join(['%s'] * len(after))})")
            # As text: Postgres reads each as its sort column's type (a forged one is a
            # DataError, the caller's 400), where an int would make the comparison fail.
            values.extend(str(v) for v in after)
        direction = " desc" if self.descending else ""
        sql = (
            f"select {', '.join(self.columns)} from {self.table}"
            f" where {' and '.join(where)}"
            f" order by {', '.join(c + direction for c in self.order)} limit {limit + 1}"
        )
        return sql, values, limit

    def page(self, rows: list[dict[str, Any]], limit: int) -> dict[str, Any]:
        items = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor([items[-1][c] for c in self.order])
        return {"items": [jsonable(r) for r in items], "next_cursor": next_cursor}


async def fetch_page(
    cur: psycopg.AsyncCursor[Any], sql: str, values: list[Any], params: Mapping[str, str]
) -> list[Any]:
    """The page's rows; a cursor or filter value the database cannot read as its column's type
    (a forged cursor: text where a time goes, a NUL, a number out of range) is the caller's
    400, not a 500 (issue 17)."""
    try:
        await cur.execute(sql, values)
    except psycopg.DataError as exc:
        field = "cursor" if params.get("cursor") else None
        what = "cursor must be a next_cursor value returned by this list"
        raise Problem(
            400,
            "invalid-cursor" if field else "invalid-parameter",
            "Invalid cursor" if field else "Invalid query parameter",
            what if field else f"a filter value is not valid here: {exc.diag.message_primary}",
            field=field,
        ) from exc
    return await cur.fetchall()


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise Problem(
            422,
            "invalid-parameter",
            "Invalid query parameter",
            f"limit must be an integer from 1 to {MAX_LIMIT}",
            field="limit",
        )
    return int(raw)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def encode_cursor(key: list[Any]) -> str:
    text = json.dumps([_plain(v) for v in key], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    if (
        not isinstance(key, list)
        or len(key) != parts
        or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in key)
    ):
        raise Problem(
            400,
            "invalid-cursor",
            "Invalid cursor",
            "cursor must be a next_cursor value returned by this list",
            field="cursor",
        )
    return key


def jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in row.items()}
