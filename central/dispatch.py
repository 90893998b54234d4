"""Case assignment messages sent to the responsible cleaner's app, at least once.

Published on `{prefix}/dispatch/{cleaner}` with QoS 1 when a case is created (and filed, if its category
auto-files). The payload is `CaseAssignment` JSON; `assignment_id` lets the app deduplicate a redelivery.

Delivery goes through a durable outbox, like the edge's events: `enqueue_assignment` writes the message into
the `dispatch_outbox` table *in the transaction that creates the case*, and the wire `Publisher` drains that
table over central's MQTT session, deleting a row only on its PUBACK. A crash after the commit, a broker outage
or a restart therefore delays an assignment but cannot lose it; a row may go out twice (a lost PUBACK, two
central instances on one PostgreSQL store draining the same row), which the app drops by `assignment_id`.

Why a table in the case store rather than the edge's SQLite outbox file: it is the only place where the
assignment commits atomically with its case. With a separate file, a crash between the case commit and the
outbox write would lose the assignment for good (the redelivered MQTT message is then a `duplicate` and
creates nothing), and with several central instances on PostgreSQL a per-instance file dies with its host,
while a table is drained by whichever instance is up.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from gridwatch.central.store import Case, CaseDraft, DispatchRow, Store
from gridwatch.wire.assignment import CaseAssignment
from gridwatch.wire.outbox import OutboxItem
from gridwatch.wire.topics import dispatch_topic

log = logging.getLogger("gridwatch.central")

KIND = "assignment"
OUTBOX: Table = DispatchRow.__table__  # type: ignore[assignment]
# Built once: Core statements on the table, run on the transaction's connection (no ORM bookkeeping per call)
_ENQUEUE = insert(OUTBOX)
_DELETE_ACKED = delete(OUTBOX).where(OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
_ADD_ATTEMPTS = (update(OUTBOX).where(OUTBOX.c.id == bindparam("row_id"))
                 .values(attempts=OUTBOX.c.attempts + bindparam("tries")))


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
    rows = [{"assignment_id": str(a.assignment_id), "topic": assignment_topic(prefix, a),
             "payload": a.model_dump_json().encode(), "created_at": a.assigned_at, "attempts": 0}
            for a in assignments]
    if rows:
        session.connection().execute(_ENQUEUE, rows)


class DispatchOutbox:
    """The `dispatch_outbox` table as a wire `OutboxStore`, for the wire `Publisher`.

    The publisher calls these from its own thread and (`ack`) from the MQTT network thread, which must never wait
    for the database: on SQLite the worker's batch holds the write lock until its commit. So the bookkeeping (rows
    acknowledged by PUBACK, attempt counts) is kept here in memory, and written by the central worker in its next
    batch transaction, or within its idle poll (`write_bookkeeping` / `settled`). Until then `pending()` and
    `len()` leave the acknowledged rows out; a crash in between sends those assignments again, which the app drops
    by `assignment_id`.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._acked: set[int] = set()
        self._attempts: Counter[int] = Counter()

    def pending(self, limit: int = 100, exclude: set[int] | None = None) -> list[OutboxItem]:
        with self._lock:
            skip = set(exclude or ()) | self._acked
            tried = dict(self._attempts)
        query = select(OUTBOX).order_by(OUTBOX.c.id).limit(limit + len(skip))
        with self.store.engine.connect() as conn:  # plain rows: this runs after every batch that opened a case
            rows = [r for r in conn.execute(query) if r.id not in skip]
        return [OutboxItem(r.id, KIND, r.topic, bytes(r.payload), {}, r.attempts + tried.get(r.id, 0),
                           r.assignment_id) for r in rows[:limit]]

    def mark_attempt(self, item_id: int) -> None:
        with self._lock:
            self._attempts[item_id] += 1

    def ack(self, item_id: int) -> None:
        with self._lock:
            self._acked.add(item_id)
            self._attempts.pop(item_id, None)

    def __len__(self) -> int:
        with self._lock:
            acked = set(self._acked)
        query = select(func.count()).select_from(DispatchRow).where(DispatchRow.id.not_in(acked))
        with self.store.session() as session:
            return int(session.scalar(query) or 0)

    def has_bookkeeping(self) -> bool:
        with self._lock:
            return bool(self._acked or self._attempts)

    def write_bookkeeping(self, session: Session) -> Bookkeeping:
        """Delete the acknowledged rows and add the attempts, in the caller's transaction; pass the result to
        `settled` once it committed (if it does not, the next call writes the same again).

        At most two statements whatever the numbers: one DELETE for the acknowledged rows, one UPDATE executed for
        the attempts of the rows that stay (an attempt counted for a row deleted here changes nothing: a PUBACK
        that came before `mark_attempt` leaves one behind for every assignment)."""
        with self._lock:
            done = Bookkeeping(frozenset(self._acked), dict(self._attempts))
        conn = session.connection()
        for chunk in _chunks(sorted(done.acked)):
            conn.execute(_DELETE_ACKED, {"ids": chunk})
        tried = [{"row_id": item_id, "tries": tries} for item_id, tries in sorted(done.attempts.items())
                 if item_id not in done.acked]
        if tried:
            conn.execute(_ADD_ATTEMPTS, tried)
        return done

    def settled(self, done: Bookkeeping) -> None:
        """`done` is committed: forget it."""
        with self._lock:
            self._acked -= done.acked
            for item_id, tries in done.attempts.items():
                left = self._attempts.get(item_id, 0) - tries
                if left > 0:
                    self._attempts[item_id] = left
                else:
                    self._attempts.pop(item_id, None)


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    """Ids in lists of at most `size` (well under SQLite's and PostgreSQL's parameter limits)."""
    return [ids[i:i + size] for i in range(0, len(ids), size)]


@dataclass(frozen=True)
class Bookkeeping:
    """What `DispatchOutbox.write_bookkeeping` wrote: rows deleted on their PUBACK, attempts added per row."""

    acked: frozenset[int]
    attempts: dict[int, int]
