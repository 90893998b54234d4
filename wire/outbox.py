"""The durable outbox: every message is written here before it is published, and deleted only on PUBACK.

Shared by the edge (incident events and evidence, `Outbox`: its own SQLite file) and central (case assignments,
`gridwatch.central.dispatch.DispatchOutbox`: a table in the case store, written in the case's transaction).
`gridwatch.wire.publisher.Publisher` drains either through the `OutboxStore` interface below.

SQLite in WAL mode, one row per message, oldest first. A gateway that loses power or its uplink keeps its
events; on restart or reconnect the publisher replays whatever is still here (central dedupes on `event_id`).
The table is bounded (`max_rows`): past it, the oldest *evidence* rows are dropped first (pictures are nice to
have; incident events are the record), and drops are counted.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    props TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox(kind, id);
"""


@dataclass(frozen=True)
class OutboxItem:
    """One message waiting for its PUBACK. `key` is the message's idempotency key where it has one
    (central's `assignment_id`); the edge's events carry theirs (`event_id`) inside the payload."""

    id: int
    kind: str
    topic: str
    payload: bytes
    properties: dict[str, str]
    attempts: int
    key: str | None = None


class OutboxStore(Protocol):
    """What the publisher needs from an outbox: the oldest rows, and a way to book attempts and PUBACKs."""

    def pending(self, limit: int = 100, exclude: set[int] | None = None) -> list[OutboxItem]:
        """Up to `limit` rows, oldest first, leaving out the ids in `exclude` (already in flight)."""
        ...

    def mark_attempt(self, item_id: int) -> None: ...

    def ack(self, item_id: int) -> None:
        """The broker acknowledged the row: delete it (a no-op when it is already gone)."""
        ...

    def __len__(self) -> int: ...


class Outbox:
    """The edge's outbox: one SQLite file (WAL, synchronous=FULL) that outlives the process."""

    def __init__(self, path: str | Path, max_rows: int = 200_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_rows = max_rows
        self.dropped = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def put(self, kind: str, topic: str, payload: bytes, properties: dict[str, str] | None = None) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO outbox(created, kind, topic, payload, props) VALUES (?, ?, ?, ?, ?)",
                (time.time(), kind, topic, payload, json.dumps(properties or {})),
            )
            self._enforce_bound()
            return int(cur.lastrowid or 0)

    def pending(self, limit: int = 100, exclude: set[int] | None = None) -> list[OutboxItem]:
        """Oldest first; `exclude` skips ids already in flight."""
        exclude = exclude or set()
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, topic, payload, props, attempts FROM outbox ORDER BY id LIMIT ?",
                (limit + len(exclude),),
            ).fetchall()
        items = [OutboxItem(r[0], r[1], r[2], bytes(r[3]), json.loads(r[4]), r[5]) for r in rows]
        return [i for i in items if i.id not in exclude][:limit]

    def mark_attempt(self, item_id: int) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (item_id,))

    def ack(self, item_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def _enforce_bound(self) -> None:
        excess = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]) - self.max_rows
        if excess <= 0:
            return
        for kind in ("evidence", "incident"):
            cur = self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind = ? ORDER BY id LIMIT ?)",
                (kind, excess),
            )
            self.dropped += cur.rowcount
            excess -= cur.rowcount
            if excess <= 0:
                return

    def close(self) -> None:
        with self._lock:
            self._db.close()
