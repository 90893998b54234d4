"""Case assignment messages sent to the responsible cleaner's app, at least once.

Published on `{prefix}/dispatch/{cleaner}` with QoS 1 when a case is created (and filed, if its category
auto-files). The payload is `CaseAssignment` JSON; `assignment_id` lets the app deduplicate a redelivery.

Delivery goes through a durable outbox, like the edge's events: `enqueue_assignment` writes the message into the
`dispatch_outbox` table *in the transaction that creates the case*, and the wire `Publisher` drains that table over
central's MQTT session until the broker's PUBACK. A crash after the commit, a broker outage or a restart therefore
delays an assignment but cannot lose it; nor does a PUBACK "no matching subscribers" settle it for its first 60 s
(the service's publisher backs such a row off and sends it again). The broker may still lose what it acknowledged
if it crashes before its next save (the shipped one saves every 60 s), so a PUBACKed row is kept
`DISPATCH_REPLAY_S` and sent again after every reconnect (`DispatchOutbox`). A row may go out twice (a lost PUBACK,
a reconnect, two central instances on one PostgreSQL store draining the same row), which the app drops by
`assignment_id`.

Why a table in the case store rather than the edge's SQLite outbox file: it is the only place where the
assignment commits atomically with its case. With a separate file, a crash between the case commit and the
outbox write would lose the assignment for good (the redelivered MQTT message is then a `duplicate` and
creates nothing), and with several central instances on PostgreSQL a per-instance file dies with its host,
while a table is drained by whichever instance is up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Float, Row, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from gridwatch.central import pg_bulk
from gridwatch.central.store import Case, CaseDraft, DispatchRow, Store
from gridwatch.wire.assignment import CaseAssignment
from gridwatch.wire.outbox import OutboxItem
from gridwatch.wire.topics import dispatch_topic

log = logging.getLogger("gridwatch.central")

KIND = "assignment"
OUTBOX: Table = DispatchRow.__table__  # type: ignore[assignment]
# How long a PUBACKed assignment is kept to be sent again after a reconnect: above the shipped broker's
# `autosave_interval 60` (seconds between saves) plus the save itself, with room (DispatchOutbox).
DISPATCH_REPLAY_S = 180.0
PRUNE_EVERY_S = 60.0
KNOWN_MAX_AGE_S = 1.0  # `DispatchOutbox.pending` reuses the rows it read at most this long
KNOWN_ROWS = 500  # and reads this many at a time (about 1 KB each)
# Built once: Core statements on the table, run on the transaction's connection (no ORM bookkeeping per call)
_ENQUEUE = insert(OUTBOX)
_UNACKED = select(OUTBOX).where(OUTBOX.c.acked_at.is_(None)).order_by(OUTBOX.c.id)
_REPLAYED = (select(OUTBOX).where(OUTBOX.c.acked_at >= bindparam("lo"), OUTBOX.c.acked_at <= bindparam("hi"))
             .order_by(OUTBOX.c.id))
_NEWEST_ACK = select(func.max(OUTBOX.c.acked_at))
_PRUNE = delete(OUTBOX).where(OUTBOX.c.acked_at < bindparam("cut"))
_BOOK = (update(OUTBOX).where(OUTBOX.c.id == bindparam("row_id"))
         .values(attempts=OUTBOX.c.attempts + bindparam("tries"),
                 acked_at=func.coalesce(bindparam("at", type_=Float), OUTBOX.c.acked_at)))


def build_assignment(case: Case | CaseDraft, assigned_at: datetime) -> CaseAssignment:
    """The assignment message for `case` (its current state)."""
    return CaseAssignment(
        case_number=case.case_number,
        incident_id=case.incident_id,
        status=case.status,
        type=case.type,
        category_code=case.category_code,
        category_name=case.category_name,
        category_version=case.category_version,
        cleaner=case.cleaner,
        grid_cell=case.grid_cell,
        site_id=case.site_id,
        camera_id=case.camera_id,
        zone=case.zone,
        lat=case.lat,
        lon=case.lon,
        accuracy_m=case.accuracy_m,
        started_at=case.started_at,
        snapshot_sha256=case.snapshot_sha256,
        assigned_at=assigned_at,
    )


def assignment_topic(prefix: str, assignment: CaseAssignment) -> str:
    """The topic the assignment is published on."""
    return dispatch_topic(prefix, assignment.cleaner)


def enqueue_assignment(session: Session, prefix: str, assignment: CaseAssignment) -> None:
    """Add `assignment` to the dispatch outbox inside the caller's transaction (the caller commits)."""
    session.add(
        DispatchRow(
            assignment_id=str(assignment.assignment_id),
            topic=assignment_topic(prefix, assignment),
            payload=assignment.model_dump_json().encode(),
            created_at=assignment.assigned_at,
            attempts=0,
        )
    )


def enqueue_assignments(session: Session, prefix: str, assignments: Iterable[CaseAssignment]) -> None:
    """`enqueue_assignment` for many, in one multi-row INSERT (the batch ingest path)."""
    rows = assignment_rows(prefix, assignments)
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        pg_bulk.insert_rows(conn, OUTBOX, rows)  # one short statement whatever the number of rows
    else:
        conn.execute(_ENQUEUE, rows)


def assignment_rows(prefix: str, assignments: Iterable[CaseAssignment]) -> list[dict[str, Any]]:
    """The `dispatch_outbox` rows of `assignments` (what `enqueue_assignment` adds, as plain columns)."""
    return [{"assignment_id": str(a.assignment_id), "topic": assignment_topic(prefix, a),
             "payload": a.model_dump_json().encode(), "created_at": a.assigned_at, "attempts": 0}
            for a in assignments]


class DispatchOutbox:
    """The `dispatch_outbox` table as a wire `OutboxStore`, for the wire `Publisher`.

    The publisher calls these from its own thread and (`ack`, `connected`, `disconnected`) from the MQTT network
    thread, which must never wait for the database: on SQLite the worker's batch holds the write lock until its
    commit. So the bookkeeping (PUBACK times, attempt counts) is kept here in memory, and written by the central
    worker in its next batch transaction, or within its idle poll (`write_bookkeeping` / `settled`). Until then
    `pending()` and `len()` leave the acknowledged rows out; a crash in between sends those assignments again,
    which the app drops by `assignment_id`.

    A PUBACK does not delete the row: it stamps `acked_at`, and the row is deleted `replay_s` later. Mosquitto
    acknowledges a message before it saves it (the shipped broker saves every 60 s), so a broker crash loses the
    assignments it acknowledged since its last save, queued for cleaners who were offline or not yet delivered.
    Central cannot tell a broker crash from a network drop, so on every connect it sends again each row
    acknowledged within `replay_s` before the connection was lost (on its first connect: before the newest PUBACK
    in the table, so a central that went down with the broker replays too). Keep `replay_s` above the broker's
    `autosave_interval` plus how long a save takes.
    """

    def __init__(self, store: Store, *, replay_s: float = DISPATCH_REPLAY_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.replay_s, self.clock = store, replay_s, clock
        self._lock = threading.Lock()
        self._acked: dict[int, float] = {}  # row id -> PUBACK time (clock), not written yet
        self._attempts: Counter[int] = Counter()
        self._lost_at: float | None = None  # when the connection went down (None: not since the last connect)
        self._replay: tuple[float, float] | None = None  # rows acked in [from, to] are due again
        self._first_connect = True
        self._anchor_on_newest = False  # the replay window of a first connect waits for the newest acked_at
        self._last_prune = float("-inf")
        self._known: list[OutboxItem] = []  # the oldest unacknowledged rows, as read at `_known_at` (`pending`)
        self._known_at = float("-inf")
        self._known_complete = False  # `_known` held every unacknowledged row (and no commit came since)
        self._generation = 0  # bumped by every commit and connect: a query that straddles one is not kept

    # connection events (network thread: no database) ---------------------------------------------------------
    def disconnected(self) -> None:
        with self._lock:
            if self._lost_at is None:
                self._lost_at = self.clock()

    def connected(self) -> None:
        """Make the rows acknowledged within `replay_s` before the connection was lost due again, including PUBACKs
        not written yet (their write is dropped: the row stays unacknowledged until its next PUBACK)."""
        with self._lock:
            now = self.clock()
            anchor = self._lost_at if self._lost_at is not None else now
            self._replay = (anchor - self.replay_s, now)
            self._anchor_on_newest, self._first_connect = self._first_connect, False
            self._lost_at = None
            self._acked = {i: t for i, t in self._acked.items() if not self._replay[0] <= t <= now}
            self._forget_known()

    # OutboxStore ------------------------------------------------------------------------------------------
    def pending(self, limit: int = 100, exclude: set[int] | None = None) -> list[OutboxItem]:
        """The oldest rows to (re)send. The publisher asks after every batch and every PUBACK, so one query reads
        up to `KNOWN_ROWS` of the oldest unacknowledged rows and later calls take from them (minus the ones
        acknowledged or in flight since) while they last: rows a later commit adds have higher ids, so the oldest
        still come first. Read again when too few are left, after a reconnect, and after `KNOWN_MAX_AGE_S` (rows
        another central instance added to a shared table)."""
        with self._lock:
            skip = set(exclude or ()) | set(self._acked)
            tried = dict(self._attempts)
            fresh = time.monotonic() - self._known_at < KNOWN_MAX_AGE_S
            known = [item for item in self._known if item.id not in skip] if fresh else []
            enough = fresh and (len(known) >= limit or self._known_complete)
        window = self._window()
        if not enough or window is not None:
            known = [item for item in self._query(max(limit + len(skip), KNOWN_ROWS), window) if item.id not in skip]
        return [replace(item, attempts=item.attempts + tried.get(item.id, 0)) if item.id in tried else item
                for item in known[:limit]]

    def _query(self, limit: int, window: tuple[float, float] | None) -> list[OutboxItem]:
        """Up to `limit` unacknowledged rows and rows due again in `window`, by id. Without a transaction (no
        BEGIN and ROLLBACK round trips): one statement each, and nothing here needs a consistent snapshot."""
        with self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            with self._lock:
                generation = self._generation
            rows = [_item(r) for r in conn.execute(_UNACKED.limit(limit))]
            if window is None:
                with self._lock:
                    if self._generation == generation:  # no commit or reconnect while it ran
                        self._known, self._known_at = rows, time.monotonic()
                        self._known_complete = len(rows) < limit
                return rows
            replayed = [_item(r) for r in conn.execute(_REPLAYED.limit(limit), {"lo": window[0], "hi": window[1]})]
        if not replayed:
            self._close_window(window)
        return sorted(rows + replayed, key=lambda item: item.id)

    def _forget_known(self) -> None:
        """Under the lock: the replay window changed (a connect)."""
        self._known, self._known_complete, self._generation = [], False, self._generation + 1
        self._known_at = float("-inf")

    def _commit_known(self, done: Bookkeeping) -> None:
        """Under the lock: `done` committed. Its acknowledged rows leave the rows read, its attempts join them; the
        commit may have added rows, so the rows read are no longer known to be all of them."""
        self._known = [replace(item, attempts=item.attempts + done.attempts.get(item.id, 0))
                       if item.id in done.attempts else item
                       for item in self._known if item.id not in done.acked]
        self._known_complete, self._generation = False, self._generation + 1

    def _window(self) -> tuple[float, float] | None:
        """The replay window; on a first connect anchored on the newest PUBACK the table holds (one query)."""
        with self._lock:
            window, anchor_on_newest = self._replay, self._anchor_on_newest
            self._anchor_on_newest = False
        if window is None or not anchor_on_newest:
            return window
        with self.store.engine.connect() as conn:
            newest = conn.execute(_NEWEST_ACK).scalar()
        with self._lock:
            if self._replay == window:  # no reconnect meanwhile
                self._replay = window = (min(window[0], float(newest) - self.replay_s) if newest is not None
                                         else window[0], window[1])
            return self._replay

    def _close_window(self, window: tuple[float, float]) -> None:
        with self._lock:
            if self._replay == window:
                self._replay = None

    def mark_attempt(self, item_id: int) -> None:
        with self._lock:
            self._attempts[item_id] += 1

    def ack(self, item_id: int) -> None:
        with self._lock:
            self._acked[item_id] = self.clock()

    def __len__(self) -> int:
        """Rows still to be (re)sent: not acknowledged, or due again after a reconnect."""
        return len(self.pending(limit=1_000_000))

    def has_bookkeeping(self) -> bool:
        with self._lock:
            return bool(self._acked or self._attempts)

    def write_bookkeeping(self, session: Session) -> Bookkeeping:
        """Stamp the acknowledged rows and add the attempts, in the caller's transaction; pass the result to
        `settled` once it committed (if it does not, the next call writes the same again).

        One UPDATE executed for all rows whatever the numbers, and, at most once a minute, one DELETE of the rows
        acknowledged more than `replay_s` ago."""
        with self._lock:
            done = Bookkeeping(dict(self._acked), dict(self._attempts))
            now = self.clock()
            prune = now - self._last_prune >= PRUNE_EVERY_S
        conn = session.connection()
        if prune:
            conn.execute(_PRUNE, {"cut": now - self.replay_s})
        rows = [{"row_id": item_id, "tries": done.attempts.get(item_id, 0), "at": done.acked.get(item_id)}
                for item_id in sorted(done.acked.keys() | done.attempts.keys())]
        if rows and conn.dialect.name == "postgresql":
            pg_bulk.Pipeline(conn).run([_pg_book(conn, rows)])  # one statement, not one per row
        elif rows:
            conn.execute(_BOOK, rows)
        if prune:
            with self._lock:
                self._last_prune = now
        return done

    def settled(self, done: Bookkeeping) -> None:
        """`done` is committed: forget it (a PUBACK noted again since is kept for the next write). The worker calls
        this after every commit, so it also tells `pending` that rows may have been added."""
        with self._lock:
            self._commit_known(done)
            for item_id, at in done.acked.items():
                if self._acked.get(item_id) == at:
                    del self._acked[item_id]
            for item_id, tries in done.attempts.items():
                left = self._attempts.get(item_id, 0) - tries
                if left > 0:
                    self._attempts[item_id] = left
                else:
                    self._attempts.pop(item_id, None)


def _pg_book(conn: Connection, rows: list[dict[str, Any]]) -> pg_bulk.Statement:
    """`_BOOK` for every row in one statement on PostgreSQL (an array per column: `pg_bulk`). Issue 8: the
    per-row UPDATEs were 6 % of the worker's samples at 5,000 events/s (`chaos_rate.py --rate-profile`)."""
    return pg_bulk.Statement(
        f"UPDATE {OUTBOX.name} SET attempts = {OUTBOX.name}.attempts + u.tries, "
        f"acked_at = COALESCE(u.at, {OUTBOX.name}.acked_at) "
        f"FROM unnest(%(row_id)b::integer[], %(tries)b::integer[], %(at)b::float8[]) AS u(row_id, tries, at) "
        f"WHERE {OUTBOX.name}.id = u.row_id",
        {"row_id": [row["row_id"] for row in rows], "tries": [int(row["tries"]) for row in rows],
         "at": [None if row["at"] is None else float(row["at"]) for row in rows]})


def _item(row: Row[Any]) -> OutboxItem:
    return OutboxItem(row.id, KIND, row.topic, bytes(row.payload), {}, row.attempts, row.assignment_id)


@dataclass(frozen=True)
class Bookkeeping:
    """What `DispatchOutbox.write_bookkeeping` wrote: PUBACK times per row, attempts added per row."""

    acked: dict[int, float]
    attempts: dict[int, int]
