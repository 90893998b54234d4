"""The durable outbox: every message is written here before it is published, and deleted only once it is safe.

"Safe" is the broker's PUBACK (central's dispatch outbox, and a gateway configured `mqtt.confirm: puback`), or
central's receipt (`gridwatch.wire.receipts`; the edge's default): the broker can lose a message it has already
acknowledged if it crashes before saving, so the edge keeps the row after the PUBACK (state `published`) until a
receipt names its `key` (the event's `event_id`), and sends it again if none comes (`pending(now=...)`): at its
`resend_at` once a receipt has settled a row published after it (central has moved past it: it was lost), and at
its `retry_at` in any case (central down, or lagging far behind). Every reconnect makes the newest ones due at
once: once central receipts those, every older row it has not receipted was lost, and is due at its `resend_at`.
The newest row of all is due at its `resend_at` without a later receipt (none can come): after a broker crash that
lost central's subscription, what the gateway sent before central subscribed again went nowhere, and the receipt
of this one resend is what makes the older rows due.

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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

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

# Added for receipts; an outbox file written by an older gateway gets them on open (`_migrate`).
RECEIPT_COLUMNS = {
    "key": "ALTER TABLE outbox ADD COLUMN key TEXT",
    "state": "ALTER TABLE outbox ADD COLUMN state TEXT NOT NULL DEFAULT 'pending'",
    "resend_at": "ALTER TABLE outbox ADD COLUMN resend_at REAL",
    "retry_at": "ALTER TABLE outbox ADD COLUMN retry_at REAL",
}
RECEIPT_INDEXES = (
    "CREATE INDEX IF NOT EXISTS outbox_key ON outbox(key, kind)",
    "CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state, id)",
    "CREATE INDEX IF NOT EXISTS outbox_retry ON outbox(state, retry_at)",
)
COLUMNS = "id, kind, topic, payload, props, attempts, key"
PENDING, PUBLISHED = "pending", "published"


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


@runtime_checkable
class ConfirmingStore(OutboxStore, Protocol):
    """An outbox whose rows wait for an end-to-end receipt after the PUBACK (the publisher's `confirm="receipt"`)."""

    def pending(self, limit: int = 100, exclude: set[int] | None = None,
                now: float | None = None) -> list[OutboxItem]:
        """As `OutboxStore.pending`, plus the published rows that are due again at `now` (`Outbox.pending`)."""
        ...

    def mark_published(self, item_id: int, resend_at: float, retry_at: float) -> None:
        """The broker acknowledged the row: keep it; it is due again at `resend_at` if a later row has been
        receipted by then, at `retry_at` in any case (publisher clock)."""
        ...

    def republish_newest(self, count: int) -> int:
        """The newest `count` published rows are due again now (after a reconnect or a restart): how many."""
        ...


class Outbox:
    """The edge's outbox: one SQLite file (WAL, synchronous=FULL) that outlives the process.

    `pending(now=...)` returns rows never published plus published rows that are due again (module docstring);
    `settle` deletes the rows a receipt names and remembers the newest of them. Rows from before this version
    get their `key` from their payload on open.
    """

    def __init__(self, path: str | Path, max_rows: int = 200_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_rows = max_rows
        self.dropped = 0
        self.settled_upto = 0  # the newest row id a receipt has settled (since open)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the receipt columns to an older file and give its rows their keys (the `event_id`)."""
        have = {str(r[1]) for r in self._db.execute("PRAGMA table_info(outbox)")}
        added = [name for name in RECEIPT_COLUMNS if name not in have]
        for name in added:
            self._db.execute(RECEIPT_COLUMNS[name])
        for index in RECEIPT_INDEXES:
            self._db.execute(index)
        if "key" in added:
            rows = self._db.execute("SELECT id, kind, payload, props FROM outbox").fetchall()
            for row_id, kind, payload, props in rows:
                key = key_of(kind, bytes(payload), json.loads(props))
                if key is not None:
                    self._db.execute("UPDATE outbox SET key = ? WHERE id = ?", (key, row_id))

    def put(self, kind: str, topic: str, payload: bytes, properties: dict[str, str] | None = None,
            key: str | None = None) -> int:
        """Add a row; `key` is the id a receipt will name (the event's `event_id`; derived from the payload or
        the `event_id` property when not given)."""
        props = properties or {}
        key = key if key is not None else key_of(kind, payload, props)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO outbox(created, kind, topic, payload, props, key) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), kind, topic, payload, json.dumps(props), key),
            )
            self._enforce_bound()
            return int(cur.lastrowid or 0)

    def pending(self, limit: int = 100, exclude: set[int] | None = None,
                now: float | None = None) -> list[OutboxItem]:
        """Oldest first; `exclude` skips ids already in flight. Published rows (waiting for a receipt) are left
        out unless `now` is given and they are due: `resend_at` passed and a later row settled (or it is the
        newest row of all), or `retry_at` passed."""
        exclude = exclude or set()
        n = limit + len(exclude)
        with self._lock:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM outbox WHERE state = ? ORDER BY id LIMIT ?",
                                    (PENDING, n)).fetchall()
            if now is not None:  # each query walks an index: thousands of rows waiting for receipts cost nothing
                rows += self._db.execute(
                    f"SELECT {COLUMNS} FROM outbox WHERE state = ? AND retry_at <= ? ORDER BY retry_at LIMIT ?",
                    (PUBLISHED, now, n)).fetchall()
                rows += self._db.execute(
                    f"SELECT {COLUMNS} FROM outbox WHERE state = ? AND id < ? AND resend_at <= ? LIMIT ?",
                    (PUBLISHED, self.settled_upto, now, n)).fetchall()
                rows += self._db.execute(  # the newest row: no later one can be receipted to show it was lost
                    f"SELECT {COLUMNS} FROM outbox WHERE id = (SELECT MAX(id) FROM outbox) AND state = ? "
                    "AND resend_at <= ?", (PUBLISHED, now)).fetchall()
        unique = {r[0]: r for r in rows if r[0] not in exclude}
        items = [OutboxItem(r[0], r[1], r[2], bytes(r[3]), json.loads(r[4]), r[5], r[6]) for r in unique.values()]
        return sorted(items, key=lambda i: i.id)[:limit]

    def mark_published(self, item_id: int, resend_at: float, retry_at: float) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET state = ?, resend_at = ?, retry_at = ? WHERE id = ?",
                             (PUBLISHED, resend_at, retry_at, item_id))

    def republish_newest(self, count: int) -> int:
        with self._lock:
            cur = self._db.execute(
                "UPDATE outbox SET state = ?, resend_at = NULL, retry_at = NULL WHERE id IN "
                "(SELECT id FROM outbox WHERE state = ? ORDER BY id DESC LIMIT ?)", (PENDING, PUBLISHED, count))
            return int(cur.rowcount)

    def settle(self, kind: str, keys: Iterable[str]) -> int:
        """A receipt named these keys: delete their rows of `kind` (whatever their state); how many there were."""
        wanted = list(dict.fromkeys(keys))
        deleted = 0
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                where = f"kind = ? AND key IN ({marks})"
                newest = self._db.execute(f"SELECT MAX(id) FROM outbox WHERE {where}", (kind, *chunk)).fetchone()[0]
                cur = self._db.execute(f"DELETE FROM outbox WHERE {where}", (kind, *chunk))
                deleted += int(cur.rowcount)
                self.settled_upto = max(self.settled_upto, int(newest or 0))
        return deleted

    def counts(self) -> dict[str, int]:
        """Rows per state: `pending` (not yet acknowledged by the broker) and `published` (waiting for a receipt)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        out = {PENDING: 0, PUBLISHED: 0}
        out.update({str(state): int(n) for state, n in rows})
        return out

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


def key_of(kind: str, payload: bytes, properties: dict[str, str]) -> str | None:
    """The id a receipt names for a row: the `event_id` property (evidence), else the payload's `event_id`."""
    if properties.get("event_id"):
        return str(properties["event_id"])
    if kind != "incident":
        return None
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    value = data.get("event_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
