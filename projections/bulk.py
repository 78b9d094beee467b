"""Batched writes for the Postgres projections: load the rows a batch touches once, fold the
batch's events into them in memory, write them back in a few set-based statements.

Per-row statements cost a round trip each (and the parts needed their results to decide the
next one), which held a rebuild to ~2,000 events/s. Here a part reads the rows of the keys its
batch names in one ``select ... for update``, applies its pure per-event rules to those dicts in
event order, and writes the difference back: one insert, one update and one delete per table at
most, each taking every row as one jsonb array (``jsonb_populate_recordset`` converts it to the
table's own row type, so no column types are repeated here).

The guarantees do not change: the rows are read under the same transaction and lock as they are
written (the live runner's advisory lock serializes its batch transactions; a replay writes its
own schema alone), the in-memory rules are the same version guards as before, and the
statements keep their guards as a second line (``on conflict do nothing``, ``version <``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg

from projections.runner import Delivered, Position
from projections.storable import REPLACEMENT

try:  # the same JSON as the standard library's encoder, several times faster, when installed
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None  # type: ignore[assignment]

Row = dict[str, Any]
Key = tuple[Any, ...]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# A JSON escape of NUL that is not itself escaped (an odd number of backslashes before "u").
_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _encode(rows: Sequence[Row]) -> str:
    if _orjson is not None:
        return _orjson.dumps(rows, default=_plain).decode()
    return json.dumps(rows, default=_plain, ensure_ascii=False, separators=(",", ":"))


def dumps(rows: Sequence[Row]) -> str:
    """Rows as a JSON array, times in ISO 8601 (Postgres reads them back exactly). Postgres
    refuses NUL in text and jsonb, so it becomes U+FFFD here, in every string of every row
    (see projections/storable.py), without walking the rows in Python."""
    text = _encode(rows)
    return _NUL.sub("\\1" + REPLACEMENT, text) if "\\u0000" in text else text


def _name(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _columns(names: Iterable[str]) -> str:
    return ", ".join(_name(n) for n in names)


def _recordset(table: str) -> str:
    return f"jsonb_populate_recordset(null::{_name(table)}, %s::jsonb)"


@functools.cache
def _insert(table: str, names: tuple[str, ...]) -> bytes:
    """The statement text, made once: psycopg prepares statements by their text."""
    columns = _columns(names)
    return (
        f"insert into {_name(table)} ({columns}) select {columns} from {_recordset(table)}"
        " on conflict do nothing"
    ).encode()


def insert_new(cur: psycopg.Cursor[Any], table: str, rows: Iterable[Row]) -> None:
    """Insert rows whose key may exist already; an existing row (or an earlier row of the same
    key in ``rows``) wins, as a sequence of ``insert ... on conflict do nothing`` would."""
    by_columns: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        by_columns.setdefault(tuple(row), []).append(row)
    for names, group in by_columns.items():
        cur.execute(_insert(table, names), (dumps(group),))


class Rows:
    """The rows of one table that a batch touches, by primary key.

    ``columns`` are the columns the part reads or changes after a row exists (the key aside):
    only they are loaded and written back by an update, so that a large column written once
    (a task's input) is never carried again. ``versioned`` tables get the ``version <`` guard
    in their update statement.
    """

    def __init__(
        self, table: str, key: tuple[str, ...], columns: tuple[str, ...], versioned: bool = True
    ) -> None:
        self.table = table
        self.key = key
        self.columns = columns
        self.versioned = versioned
        self.loaded: dict[Key, Row] = {}
        self.rows: dict[Key, Row | None] = {}
        self._pending: list[psycopg.Cursor[Any]] = []

    def load(self, cur: psycopg.Cursor[Any], by: tuple[str, ...], values: Iterable[Key]) -> None:
        """Read and lock the rows whose ``by`` columns (the key or a prefix of it) take one of
        ``values``. The query is sent now and its rows taken when first needed, so that in
        pipeline mode every part's loads travel together."""
        wanted = [dict(zip(by, v, strict=True)) for v in set(values)]
        if not wanted:
            return
        names = (*self.key, *self.columns)
        query = (
            f"select {_columns(names)} from {_name(self.table)} where ({_columns(by)}) in"
            f" (select {_columns(by)} from {_recordset(self.table)}) for update"
        )
        reader = cur.connection.cursor()
        reader.execute(query.encode(), (dumps(wanted),))
        self._pending.append(reader)

    def _take_loaded(self) -> None:
        width, names = len(self.key), (*self.key, *self.columns)
        for reader in self._pending:
            for found in reader.fetchall():
                key = tuple(found[:width])
                if key not in self.loaded:
                    row = dict(zip(names, found, strict=True))
                    self.loaded[key] = row
                    self.rows[key] = dict(row)
            reader.close()
        self._pending.clear()

    def get(self, key: Key) -> Row | None:
        """The row as the batch has made it so far (changes go into the returned dict)."""
        if self._pending:
            self._take_loaded()
        return self.rows.get(key)

    def put(self, row: Row) -> Row:
        """A new row (for a key that has none)."""
        if self._pending:
            self._take_loaded()
        self.rows[tuple(row[k] for k in self.key)] = row
        return row

    def delete(self, key: Key) -> None:
        if self._pending:
            self._take_loaded()
        self.rows[key] = None

    def flush(self, cur: psycopg.Cursor[Any]) -> None:
        """Write what changed: deleted rows, changed rows (their ``columns``), new rows."""
        if self._pending:
            self._take_loaded()
        gone = [k for k, row in self.rows.items() if row is None and k in self.loaded]
        changed = []
        added = []
        for key, row in self.rows.items():
            if row is None:
                continue
            if key not in self.loaded:
                added.append(row)
            elif row != self.loaded[key]:
                changed.append({c: row[c] for c in (*self.key, *self.columns)})
        table, source = _name(self.table), _recordset(self.table)
        matches = " and ".join(f"t.{_name(k)} = n.{_name(k)}" for k in self.key)
        if gone:
            cur.execute(
                f"delete from {table} t using {source} n where {matches}".encode(),
                (dumps([dict(zip(self.key, k, strict=True)) for k in gone]),),
            )
        if changed:
            guard = " and t.version < n.version" if self.versioned else ""
            sets = ", ".join(f"{_name(c)} = n.{_name(c)}" for c in self.columns)
            cur.execute(
                f"update {table} t set {sets} from {source} n where {matches}{guard}".encode(),
                (dumps(changed),),
            )
        if added:
            insert_new(cur, self.table, added)


class BatchPart:
    """A projection part that applies whole batches; one event is a batch of one, so the
    single-event path and the batched one are the same code.

    ``steps`` sends the batch's loads, yields once, then folds and writes: the core projection
    advances every part to its yield first, so that in pipeline mode all loads go in one round
    trip and each part's writes run in Postgres while the next part folds in Python.
    """

    def steps(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> Iterator[None]:
        raise NotImplementedError

    def apply_batch(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> None:
        for _ in self.steps(cur, batch):
            pass

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        self.apply_batch(cur, [(record_name, value, at)])
