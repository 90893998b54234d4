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
value (`select_statement`).

Fewer round trips (`Pipeline`): the batch path sends its reads as one pipelined exchange (libpq pipeline mode:
every statement sent, then one sync) and its writes as another, so a run costs a handful of round trips instead of
one per statement. Each round trip on a busy machine is a wait for the server's process to be scheduled and, for
central's worker, a wait to get the GIL back from the MQTT network thread (up to the 5 ms switch interval).

Only for PostgreSQL; the batch path (`central.ingest_batch`) keeps SQLAlchemy's statements for SQLite, whose
`executemany` runs one prepared statement per row in C.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Connection, Float, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeDecorator

_TEXT: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], str] = {}  # built statements, by what they do


@dataclass
class Statement:
    """One statement for `Pipeline.run`: its text (psycopg placeholders), parameters, and what to do with its rows
    (`columns` named with `processors` applied: a list of dicts; none: the statement's rows are not read)."""

    text: str
    params: dict[str, Any] | None = None
    columns: tuple[str, ...] = ()
    processors: list[Callable[[Any], Any] | None] = field(default_factory=list)


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                returning: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """INSERT `rows` (dicts with the same keys, all of them columns of `table`) in one statement; the `returning`
    columns of each inserted row (in no particular order) when asked for."""
    if not rows:
        return []
    return Pipeline(conn).run([insert_statement(conn, table, rows, returning)])[0]


def insert_statement(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                     returning: tuple[str, ...] = ()) -> Statement:
    """The `insert_rows` statement (`rows` not empty)."""
    keys = tuple(rows[0])
    key = ("insert", table.name, keys, returning)
    if key not in _TEXT:
        quote = conn.dialect.identifier_preparer.quote
        names = ", ".join(quote(k) for k in keys)
        arrays = ", ".join(_array(conn, table.c[k], k) for k in keys)
        back = f" RETURNING {', '.join(quote(k) for k in returning)}" if returning else ""
        _TEXT[key] = f"INSERT INTO {quote(table.name)} ({names}) SELECT * FROM unnest({arrays}){back}"
    return Statement(_TEXT[key], _columns(conn, table, rows, keys), returning,
                     [_result_processor(conn, table.c[c]) for c in returning])


def insert_with_children(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], children: Table,
                         child_rows: Sequence[dict[str, Any]], *, fk: str, by: str) -> Statement:
    """One statement that inserts `rows` into `table` and `child_rows` into `children` (in their order): a child
    whose `fk` is None takes the `id` of the new row with the same `by` value (its `by` key is not a column of
    `children`), as a data-modifying CTE: `WITH new AS (INSERT .. RETURNING id, by) INSERT INTO children ..`."""
    parent = insert_statement(conn, table, rows, returning=("id", by))
    keys = tuple(k for k in child_rows[0] if k != by) if child_rows else ()
    key = ("insert_with_children", f"{table.name}>{children.name}", keys, (fk, by, parent.text))
    if key not in _TEXT:
        quote = conn.dialect.identifier_preparer.quote
        arrays = ", ".join(_array(conn, children.c[k], f"child_{k}") for k in keys)
        link = _array(conn, table.c[by], f"child_{by}")
        picked = ", ".join(f"COALESCE(c.{quote(k)}, new.id)" if k == fk else f"c.{quote(k)}" for k in keys)
        aliases = ", ".join(quote(k) for k in (*keys, by))
        _TEXT[key] = (f"WITH new AS ({parent.text}) INSERT INTO {quote(children.name)} "
                      f"({', '.join(quote(k) for k in keys)}) SELECT {picked} FROM unnest({arrays}, {link}) "
                      f"WITH ORDINALITY AS c({aliases}, n) LEFT JOIN new ON new.{quote(by)} = c.{quote(by)} "
                      f"ORDER BY c.n")
    params = dict(parent.params or {})
    params.update({f"child_{k}": v for k, v in _columns(conn, children, child_rows, keys).items()})
    params[f"child_{by}"] = _values(conn, table.c[by], [row[by] for row in child_rows])
    return Statement(_TEXT[key], params)


def update_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], by: str, key_column: str) -> None:
    """UPDATE the rows of `table` whose `key_column` is each row's `by` value, setting the row's other keys."""
    if rows:
        Pipeline(conn).run([update_statement(conn, table, rows, by, key_column)])


def update_statement(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], by: str,
                     key_column: str) -> Statement:
    """The `update_rows` statement (`rows` not empty)."""
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
    return Statement(_TEXT[key], {k: _values(conn, columns[k], [row[k] for row in rows]) for k in keys})


def select_statement(conn: Connection, table: Table, key: str, values: Sequence[Any], columns: tuple[str, ...],
                     *, lock: bool = False, where: str = "") -> Statement:
    """The `columns` of the rows of `table` whose `key` is one of `values` (`= ANY` of one array parameter: the
    same statement text however many values, where an `IN (...)` list has one placeholder each), ordered by `key`,
    locked `FOR UPDATE` with `lock`; `where`: an extra condition (SQL text) ANDed to it. Values of the store's own
    types (`UTCDateTime`) come through their result processing (psycopg gives the others as SQLAlchemy would)."""
    text_key = ("select", table.name, (key, *columns), ("lock",) if lock else (where,))
    if text_key not in _TEXT:
        quote = conn.dialect.identifier_preparer.quote
        _TEXT[text_key] = (f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table.name)} "
                           f"WHERE {quote(key)} = ANY({_array(conn, table.c[key], 'values')})"
                           + (f" AND {where}" if where else "") + f" ORDER BY {quote(key)}"
                           + (" FOR UPDATE" if lock else ""))
    return Statement(_TEXT[text_key], {"values": _values(conn, table.c[key], list(values))}, columns,
                     [_result_processor(conn, table.c[c]) for c in columns])


class Pipeline:
    """Statements on the connection's psycopg connection in libpq pipeline mode: `run` sends them all and waits
    once, in the caller's transaction (SQLAlchemy's, which psycopg begins with the first statement as usual).

    A failure stops the rest of that `run` (the server skips them up to the sync) and is raised as SQLAlchemy's
    exception for it (`OperationalError` for a lost server, `IntegrityError`, ...), as `Connection.execute` would;
    a lost connection is invalidated so the pool replaces it. A caller that sends `SAVEPOINT name` in its first
    `run` undoes everything since with `roll_back_to(name)` when a later one fails."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.driver: Any = conn.connection.driver_connection

    def run(self, statements: Sequence[Statement],
            meanwhile: Callable[[], None] | None = None) -> list[list[dict[str, Any]]]:
        """Send `statements` in order, wait once; each one's rows (empty for those that read none).

        `meanwhile` runs once they are sent, while the server executes them: work of the caller's that needs none
        of their results (its exception, if any, is raised after the results are read)."""
        cursors = []
        try:
            with self.driver.pipeline():
                for stmt in statements:
                    cursor = self.driver.cursor()
                    # what SQLAlchemy's own execution tells listeners (tests count statements with it)
                    self.conn.dispatch.before_cursor_execute(self.conn, cursor, stmt.text, stmt.params, None, False)
                    cursor.execute(stmt.text, stmt.params)
                    cursors.append(cursor)
                if meanwhile is not None:
                    meanwhile()
            return [_rows(cursor, stmt) for cursor, stmt in zip(cursors, statements, strict=True)]
        except self.conn.dialect.loaded_dbapi.Error as exc:
            raise self._wrapped(exc, statements) from exc
        finally:
            for cursor in cursors:
                cursor.close()

    def roll_back_to(self, savepoint: str) -> None:
        """Undo up to `savepoint` and drop it, after a failure (nothing when the connection is gone, or the
        savepoint was never made: the caller's exception says what went wrong)."""
        if self.conn.invalidated or self.driver.closed:
            return
        try:
            with self.driver.cursor() as cursor:
                cursor.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                cursor.execute(f"RELEASE SAVEPOINT {savepoint}")
        except self.conn.dialect.loaded_dbapi.Error:
            pass

    def _wrapped(self, exc: Exception, statements: Sequence[Statement]) -> BaseException:
        lost = self.conn.dialect.is_disconnect(exc, self.driver, None)  # type: ignore[arg-type]
        if lost:
            self.conn.invalidate(exc)
        text = "; ".join(stmt.text[:60] for stmt in statements)
        return DBAPIError.instance(text, None, exc, self.conn.dialect.loaded_dbapi.Error, hide_parameters=True,
                                   connection_invalidated=lost, dialect=self.conn.dialect)


def _rows(cursor: Any, stmt: Statement) -> list[dict[str, Any]]:
    if not stmt.columns:
        return []
    columns, processors = stmt.columns, stmt.processors
    return [{c: v if p is None else p(v) for c, p, v in zip(columns, processors, row, strict=True)}
            for row in cursor.fetchall()]


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
