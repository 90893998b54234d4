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
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from gridwatch.central.store import Case, DispatchRow, Store
from gridwatch.wire.assignment import CaseAssignment
from gridwatch.wire.outbox import OutboxItem
from gridwatch.wire.topics import dispatch_topic

log = logging.getLogger("gridwatch.central")

KIND = "assignment"


def build_assignment(case: Case, assigned_at: datetime) -> CaseAssignment:
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


class DispatchOutbox:
    """The `dispatch_outbox` table as a wire `OutboxStore`, for the wire `Publisher`.

    Each call is its own short transaction; the publisher calls these from its own thread and (`ack`) from the
    MQTT network thread, so a failing database is logged rather than raised there: the row then stays and is
    sent again, which the app deduplicates.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def pending(self, limit: int = 100, exclude: set[int] | None = None) -> list[OutboxItem]:
        exclude = exclude or set()
        query = select(DispatchRow).order_by(DispatchRow.id).limit(limit + len(exclude))
        with self.store.session() as session:
            rows = list(session.scalars(query))
        items = [OutboxItem(r.id, KIND, r.topic, bytes(r.payload), {}, r.attempts, r.assignment_id) for r in rows]
        return [i for i in items if i.id not in exclude][:limit]

    def mark_attempt(self, item_id: int) -> None:
        self._write(update(DispatchRow).where(DispatchRow.id == item_id).values(attempts=DispatchRow.attempts + 1))

    def ack(self, item_id: int) -> None:
        self._write(delete(DispatchRow).where(DispatchRow.id == item_id))

    def __len__(self) -> int:
        with self.store.session() as session:
            return int(session.scalar(select(func.count()).select_from(DispatchRow)) or 0)

    def _write(self, statement: object) -> None:
        try:
            with self.store.session() as session:
                session.execute(statement)  # type: ignore[call-overload]
                session.commit()
        except Exception:
            log.exception("central: dispatch outbox update failed; the assignment may be sent again")
