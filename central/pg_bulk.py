"""Many rows in one short PostgreSQL statement: one array parameter per column, `unnest`ed on the server (issue 8).

SQLAlchemy's multi-row `INSERT .. VALUES (..), (..)` for 400 rows is a statement with thousands of placeholders:
psycopg rewrites its text with a regular expression on every execution (too long for its cache), and the server
parses and plans it again each time. That was about a quarter of central's batch worker on PostgreSQL
(`benchmarks/chaos_rate.py --rate-profile`). Here the statement has one placeholder per column whatever the number
of rows::

    INSERT INTO events (event_id, ...) SELECT * FROM unnest(%(event_id)b::VARCHAR(36)[], ...)

so its text is the same for every batch: psycopg converts it once and prepares it on the server after a few runs.
`unnest` with several arrays yields their elements side by side, in order. The values go through each column
type's bind processing as with SQLAlchemy's own statements (`UTCDateTime` refuses a naive time).

Reads go the same way: `WHERE key = ANY(%(values)b::TYPE[])` instead of an `IN (...)` list with a placeholder per
value (`select_in`).

Only for PostgreSQL; the batch path (`central.ingest_batch`) keeps SQLAlchemy's statements for SQLite, whose
`executemany` runs one prepared statement per row in C.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Float, Row, Table
from sqlalchemy.types import TypeDecorator

_TEXT: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], str] = {}  # built statements, by what they do


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                returning: tuple[str, ...] = ()) -> list[Row[Any]]:
    """INSERT `rows` (dicts with the same keys, all of them columns of `table`) in one statement; the `returning`
    columns of each inserted row (in no particular order) when asked for."""
    if not rows:
        return []
    keys = tuple(rows[0])
    key = ("insert", table.name, keys, returning)
    if key not in _TEXT:
        quote = conn.dialect.identifier_preparer.quote
        names = ", ".join(quote(k) for k in keys)
        arrays = ", ".join(_array(conn, table.c[k], k) for k in keys)
        back = f" RETURNING {', '.join(quote(k) for k in returning)}" if returning else ""
        _TEXT[key] = f"INSERT INTO {quote(table.name)} ({names}) SELECT * FROM unnest({arrays}){back}"
    result = conn.exec_driver_sql(_TEXT[key], _columns(conn, table, rows, keys))
    return list(result) if returning else []


def update_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], by: str, key_column: str) -> None:
    """UPDATE the rows of `table` whose `key_column` is each row's `by` value, setting the row's other keys."""
    if not rows:
        return
    keys = tuple(rows[0])
    sets = tuple(k for k in keys if k != by)
    key = ("update", table.name, keys, (by, key_column))
    if key not in _TEXT:
        quote = conn.dialect.identifier_preparer.quote
        name = quote(table.name)
        assign = ", ".join(f"{quote(k)} = u.{quote(k)}" for k in sets)
        arrays = ", ".join(_array(conn, table.c[key_column if k == by else k], k) for k in keys)
        aliases = ", ".join(quote(k) for k in keys)
        _TEXT[key] = (f"UPDATE {name} SET {assign} FROM unnest({arrays}) AS u({aliases}) "
                      f"WHERE {name}.{quote(key_column)} = u.{quote(by)}")
    columns = {by: table.c[key_column], **{k: table.c[k] for k in sets}}
    conn.exec_driver_sql(_TEXT[key], {k: _values(conn, columns[k], [row[k] for row in rows]) for k in keys})


def select_in(conn: Connection, table: Table, key: str, values: Sequence[Any], columns: tuple[str, ...],
              *, lock: bool = False) -> list[dict[str, Any]]:
    """The `columns` of the rows of `table` whose `key` is one of `values` (`= ANY` of one array parameter: the
    same statement text however many values, where an `IN (...)` list has one placeholder each), ordered by `key`,
    locked `FOR UPDATE` with `lock`; values of the store's own types (`UTCDateTime`) through their result processing
    (psycopg gives the others as SQLAlchemy would: str, int, float, bytes)."""
    if not values:
        return []
    text_key = ("select", table.name, (key, *columns), ("lock",) if lock else ())
    if text_key not in _TEXT:
        quote = conn.dialect.identifier_preparer.quote
        _TEXT[text_key] = (f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table.name)} "
                           f"WHERE {quote(key)} = ANY({_array(conn, table.c[key], 'values')}) ORDER BY {quote(key)}"
                           + (" FOR UPDATE" if lock else ""))
    processors = [_result_processor(conn, table.c[c]) for c in columns]
    rows = conn.exec_driver_sql(_TEXT[text_key], {"values": _values(conn, table.c[key], list(values))})
    return [{c: v if p is None else p(v) for c, p, v in zip(columns, processors, row, strict=True)} for row in rows]


def _result_processor(conn: Connection, column: Column[Any]) -> Callable[[Any], Any] | None:
    kind = column.type
    return kind.result_processor(conn.dialect, None) if isinstance(kind, TypeDecorator) else None


def _array(conn: Connection, column: Column[Any], name: str) -> str:
    """`%(name)b::TYPE[]`: the array parameter in psycopg's binary format (its text format escapes every element
    with a regular expression in Python: ten times slower for 400 rows)."""
    return f"%({name})b::{column.type.compile(dialect=conn.dialect)}[]"


def _columns(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
             keys: tuple[str, ...]) -> dict[str, list[Any]]:
    return {k: _values(conn, table.c[k], [row[k] for row in rows]) for k in keys}


def _values(conn: Connection, column: Column[Any], values: list[Any]) -> list[Any]:
    """`values` as the driver should see them: through the column type's bind processor, if it has one, and floats
    as floats (psycopg refuses a list that mixes `int` and `float`)."""
    process: Callable[[Any], Any] | None = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    if process is not None:
        values = [process(v) for v in values]
    if isinstance(column.type, Float):
        values = [v if v is None or type(v) is float else float(v) for v in values]
    return values
