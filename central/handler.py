"""The message handler: a batch of received messages in, one committed transaction out. No MQTT in here.

`MessageHandler.handle_batch(msgs)` validates and stores a batch of `Inbound` messages (incident or evidence) in
one transaction, together with the case assignment a new case needs (`dispatch.enqueue_assignment`); after the
commit it writes the snapshot files (`ingest.write_files`) and counts the outcomes. Each run of incident messages
goes through `ingest_batch` in one SAVEPOINT (a query per table to read, a multi-row statement per table to
write: issue 8's ingest rate); evidence messages, and a run whose batch path failed, go one SAVEPOINT per message
through `ingest_incident` / `ingest_evidence`, the reference the batch path is tested against.

It returns one result per message, in order: the `IngestResult` once the transaction committed and its file is
written (the caller may acknowledge the message), or None when the message must stay un-acknowledged (stopping
while the database is down, its file could not be written, or even the dead letter could not be written): the
broker then delivers it again. `handle(msg)` is a batch of one.

A batch behaves as its messages sent one by one: they are ingested in order in one session, so a later event of
the same incident sees the case an earlier one created or updated, and a repeated `event_id` is a `duplicate`.

- A run whose batch path raises (a write race, a value the database refuses, a bug) is rolled back to its savepoint
  and ingested again one savepoint per message, so the message at fault is dead-lettered alone.
- A message that raises rolls back its own savepoint only: the others stay in the transaction.
- A write race (`IntegrityError`: another central instance stored the same event or case first) is retried in a
  fresh savepoint up to `MAX_RACE_RETRIES` times; the retry sees the other write and becomes a duplicate or an
  update.
- A database outage (`OperationalError` / `InterfaceError`, also a PostgreSQL deadlock between two instances)
  rolls back the whole batch, which is retried with backoff (0.1 s doubling to `MAX_DB_BACKOFF_S`) until it
  ends or the service stops.
- Any other exception is a bug in a handler: logged, counted as an error and dead-lettered, so one poisonous
  message cannot block the ones behind it. A batch that fails outside any one message's savepoint is committed
  again one message at a time.

Testable with an in-memory SQLite store and plain `Inbound` values (tests/central/test_handler.py).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from gridwatch.central.categories import CategoryTable
from gridwatch.central.dispatch import DispatchOutbox, enqueue_assignment
from gridwatch.central.ingest import (
    EXPIRE_EVERY_S,
    IngestResult,
    dead_letter,
    expire_held_evidence,
    ingest_evidence,
    ingest_incident,
    sweep_partial_files,
    write_files,
)
from gridwatch.central.ingest_batch import ingest_incident_batch
from gridwatch.central.roster import Roster
from gridwatch.central.store import Store, utcnow
from gridwatch.central.transport import Inbound

log = logging.getLogger("gridwatch.central")

MAX_RACE_RETRIES = 3
MAX_DB_BACKOFF_S = 5.0

COUNTER_OF_RESULT = {
    "created": "stored",
    "updated": "stored",
    "stale": "stored",
    "duplicate": "duplicates",
    "dead_letter": "dead_letters",
    "evidence": "evidence",
}


@dataclass
class Counters:
    """What the service has seen since start. `stored` counts new incident events (including stale ones);
    `dispatched` counts case assignments the broker acknowledged."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    evidence: int = 0
    evidence_discarded: int = 0  # evidence acknowledged and receipted but not stored (no evidence folder)
    dispatched: int = 0
    errors: int = 0


class Tally:
    """`Counters` behind a condition, so other threads can wait for a count (`wait_for`)."""

    def __init__(self) -> None:
        self.counters = Counters()
        self._changed = threading.Condition()

    def bump(self, name: str) -> None:
        self.add({name: 1})

    def add(self, counts: Mapping[str, int]) -> None:
        """Add each of `counts` under one lock and one wake-up (a batch's outcomes, not one call per message)."""
        with self._changed:
            for name, n in counts.items():
                setattr(self.counters, name, getattr(self.counters, name) + n)
            self._changed.notify_all()

    def notify(self) -> None:
        """Wake `wait_for` callers whose predicate depends on something other than the counters."""
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def snapshot(self) -> dict[str, int]:
        with self._changed:
            return asdict(self.counters)


def one_line(payload: bytes) -> bytes:
    """The payload on one line: CR/LF become spaces (JSON whitespace, so valid JSON keeps its meaning)."""
    return payload.replace(b"\r", b" ").replace(b"\n", b" ") + b"\n"


class EventsLog:
    """Every incident payload as received, one line each, before validation (the demo's `events.jsonl`).

    Bounded: a line keeps at most `max_line_bytes` of its payload (a longer one ends with a marker giving the
    size and sha256, and `cut` counts it), and the file rotates at `max_bytes` to `.1` ... `.{backups}`
    (the oldest is deleted), so a flood of junk cannot fill the disk.
    """

    def __init__(self, path: str | Path, *, max_bytes: int = 64 * 1024 * 1024, backups: int = 3,
                 max_line_bytes: int = 64 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes, self.backups, self.max_line_bytes = max_bytes, backups, max_line_bytes
        self.cut = 0
        self.rotations = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = self.path.open("ab")

    def append(self, payload: bytes) -> None:
        self.append_many([payload])

    def append_many(self, payloads: Sequence[bytes]) -> None:
        """One line per payload, handed to the OS once for all of them (a batch: one write, not one each)."""
        for payload in payloads:
            line = one_line(self._bounded(payload))
            if self._file.tell() > 0 and self._file.tell() + len(line) > self.max_bytes:
                self._rotate()
            self._file.write(line)
        self._file.flush()

    def _bounded(self, payload: bytes) -> bytes:
        if len(payload) <= self.max_line_bytes:
            return payload
        self.cut += 1
        digest = hashlib.sha256(payload).hexdigest()
        return payload[: self.max_line_bytes] + f" ...[cut: {len(payload)} bytes, sha256 {digest}]".encode()

    def _rotate(self) -> None:
        self._file.close()
        for i in range(self.backups, 0, -1):
            src = self.path if i == 1 else self.path.with_name(f"{self.path.name}.{i - 1}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{i}"))
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        self.rotations += 1
        self._file = self.path.open("ab")

    def close(self) -> None:
        self._file.close()


def _never_stop(delay: float) -> bool:
    """The default `pause`: sleep `delay` seconds and report that nobody asked to stop."""
    threading.Event().wait(delay)
    return False


class MessageHandler:
    """Validate, commit with retry, dead-letter, count (see the module docstring).

    - `prefix`: the topic prefix case assignments are published under.
    - `evidence_dir`: where snapshots are written (the service subscribes to evidence only when it is set).
    - `pause(delay) -> stopping`: waits between database retries and says whether to give up (the service's
      stop event); tests pass a function that does not sleep.
    - `outbox`: the dispatch outbox whose bookkeeping (PUBACK deletes, attempts) each batch transaction writes.
    - `meanwhile()`: called while PostgreSQL executes a batch's writes (`ingest_incident_batch`); the service
      parses its next batch there (`CentralService._prefetch`).
    """

    batch_incidents = True  # False: every message in its own savepoint through `ingest_incident` (the reference)

    def __init__(self, store: Store, categories: CategoryTable, roster: Roster, *, prefix: str,
                 evidence_dir: Path | None = None, tally: Tally | None = None,
                 pause: Callable[[float], bool] = _never_stop, outbox: DispatchOutbox | None = None,
                 meanwhile: Callable[[], None] | None = None) -> None:
        self.store, self.categories, self.roster = store, categories, roster
        self.outbox = outbox
        self.prefix, self.evidence_dir = prefix, evidence_dir
        self.tally = tally or Tally()
        self._pause = pause
        self.meanwhile = meanwhile
        self._expired_at: datetime | None = None  # last sweep of held evidence
        if evidence_dir is not None:
            swept = sweep_partial_files(evidence_dir)
            if swept:
                log.info("central: removed %d partial evidence files left by an earlier crash", swept)

    def handle(self, msg: Inbound) -> IngestResult | None:
        """Commit `msg` and count it; None means: do not acknowledge (see the module docstring)."""
        return self.handle_batch([msg])[0]

    def handle_batch(self, msgs: Sequence[Inbound]) -> list[IngestResult | None]:
        """Commit `msgs` in one transaction, a savepoint each, then write their files and count them.

        One result per message, in order; None means: do not acknowledge that message (see the module docstring).
        """
        batch = list(msgs)
        if not batch:
            return []
        staged = self._commit_with_retry(batch)
        written: set[Path] = set()
        counts: Counter[str] = Counter()
        results = [None if item is None else self._finish(msg, item, written, counts)
                   for msg, item in zip(batch, staged, strict=True)]
        self.tally.add(counts)
        return results

    def _commit_with_retry(self, msgs: list[Inbound]) -> list[_Staged | None]:
        delay = 0.1
        while True:
            try:
                return list(self._commit_batch(msgs))
            except (OperationalError, InterfaceError) as exc:
                log.warning("central: database unavailable (%s); retrying %d message(s) in %.1fs", exc.orig,
                            len(msgs), delay)
                if self._pause(delay):
                    return [None] * len(msgs)
                delay = min(delay * 2, MAX_DB_BACKOFF_S)
            except Exception as exc:  # outside any one message's savepoint: the commit itself, or a dead letter
                if len(msgs) == 1:
                    log.exception("central: could not commit a message on %s", msgs[0].topic)
                    return [self._dead_letter_alone(msgs[0], exc)]
                log.exception("central: a batch of %d failed as a whole; committing its messages one by one",
                              len(msgs))
                return [item for msg in msgs for item in self._commit_with_retry([msg])]

    def _commit_batch(self, msgs: list[Inbound]) -> list[_Staged]:
        """One transaction: the held-evidence sweep when due, then each run of incident messages through the batch
        path (`_stage_run`) and each evidence message in its own savepoint."""
        with self.store.write_session() as session:
            now = utcnow()
            sweep = self._sweep_due(msgs, now)
            if sweep:
                expire_held_evidence(session, now)
            staged: list[_Staged] = []
            for run in self._runs(msgs):
                staged.extend(self._stage_run(session, run) if self._batched(run[0])
                              else [self._stage(session, msg) for msg in run])
            done = self.outbox.write_bookkeeping(session) if self.outbox is not None else None
            session.commit()
        if done is not None and self.outbox is not None:
            self.outbox.settled(done)
        if sweep:
            self._expired_at = now
        return staged

    def write_bookkeeping(self) -> None:
        """Write the dispatch outbox's PUBACK deletes and attempt counts in a transaction of their own (the
        service calls it when no message came within its poll, and at stop)."""
        if self.outbox is None or not self.outbox.has_bookkeeping():
            return
        with self.store.write_session() as session:
            done = self.outbox.write_bookkeeping(session)
            session.commit()
        self.outbox.settled(done)

    def _sweep_due(self, msgs: list[Inbound], now: datetime) -> bool:
        if self.evidence_dir is None or not any(msg.is_evidence for msg in msgs):
            return False
        return self._expired_at is None or (now - self._expired_at).total_seconds() >= EXPIRE_EVERY_S

    def _batched(self, msg: Inbound) -> bool:
        """Whether `msg` is an incident message for the batch path (evidence goes one savepoint each)."""
        return self.batch_incidents and not (msg.is_evidence and self.evidence_dir is not None)

    def _runs(self, msgs: list[Inbound]) -> list[list[Inbound]]:
        """The batch cut where it changes between the batch path and one savepoint each (order kept)."""
        runs: list[list[Inbound]] = []
        for msg in msgs:
            if runs and self._batched(msg) and self._batched(runs[-1][0]):
                runs[-1].append(msg)
            else:
                runs.append([msg])
        return runs

    def _stage_run(self, session: Session, run: list[Inbound]) -> list[_Staged]:
        """A run of incident messages in one savepoint with a few multi-row statements (`ingest_batch`). If that
        fails short of a database outage (a write race, a value the database refuses, a bug), the savepoint is
        rolled back and the run is ingested one savepoint per message, so a bad message is dead-lettered alone."""
        try:  # in a savepoint of its own, with the new cases' assignments
            results = ingest_incident_batch(session, [(m.topic, m.payload) for m in run], self.categories,
                                            self.roster, prefix=self.prefix, dispatch_prefix=self.prefix,
                                            parsed=[m.parsed for m in run], meanwhile=self.meanwhile)
        except (OperationalError, InterfaceError):
            raise  # the database is unavailable: the whole batch is rolled back and retried
        except Exception as exc:
            log.warning("central: the batch path failed on %d message(s) (%r); one savepoint each instead",
                        len(run), exc)
            session.expire_all()
            return [self._stage(session, msg) for msg in run]
        session.expire_all()  # ORM objects read earlier in the batch may be stale now
        return [_Staged(result) for result in results]

    def _stage(self, session: Session, msg: Inbound) -> _Staged:
        """Ingest one message inside its own savepoint: a failure rolls back this message only."""
        races = 0
        while True:
            try:
                with session.begin_nested():
                    return _Staged(self._ingest(session, msg))
            except IntegrityError as exc:  # another central instance stored the same event/case first
                races += 1
                log.info("central: write race on %s (%s); retry %d", msg.topic, exc.orig, races)
                if races >= MAX_RACE_RETRIES:
                    return self._dead_letter_in(session, msg, exc)
            except (OperationalError, InterfaceError):
                raise  # the database is unavailable: the whole batch is rolled back and retried
            except Exception as exc:
                log.exception("central: handler failed for a message on %s", msg.topic)
                return self._dead_letter_in(session, msg, exc)

    def _ingest(self, session: Session, msg: Inbound) -> IngestResult:
        """Ingest one message, and the assignment of a new case, in the caller's transaction."""
        now = utcnow()
        if msg.is_evidence and self.evidence_dir is not None:
            result = ingest_evidence(session, msg.topic, msg.payload, msg.properties, self.evidence_dir,
                                     prefix=self.prefix, now=now)
        else:
            result = ingest_incident(session, msg.topic, msg.payload, self.categories, self.roster,
                                     prefix=self.prefix, now=now)
        if result.dispatch is not None:
            enqueue_assignment(session, self.prefix, result.dispatch)
        return result

    def _finish(self, msg: Inbound, item: _Staged, written: set[Path], counts: Counter[str]) -> IngestResult | None:
        """After the commit: write the message's file (once per batch) and count it in `counts`; None if the write
        failed."""
        if item.error:
            counts["errors"] += 1
        result = item.result
        if result.write is not None and result.write[0] not in written:
            try:
                write_files(result)
            except OSError as exc:  # the row is committed; the redelivery rewrites the missing file
                log.error("central: could not write the evidence file for %s (%s); leaving it un-acked",
                          msg.topic, exc)
                return None
            written.add(result.write[0])
        counts[COUNTER_OF_RESULT[result.kind]] += 1
        return result

    def _dead_letter_in(self, session: Session, msg: Inbound, exc: BaseException) -> _Staged:
        with session.begin_nested():
            letter = dead_letter(session, msg.topic, msg.payload, f"handler error: {exc!r}", utcnow())
        return _Staged(letter, error=True)

    def _dead_letter_alone(self, msg: Inbound, exc: BaseException) -> _Staged | None:
        try:
            with self.store.session() as session:
                letter = dead_letter(session, msg.topic, msg.payload, f"handler error: {exc!r}", utcnow())
                session.commit()
                return _Staged(letter, error=True)
        except Exception:
            log.exception("central: could not dead-letter a message on %s; leaving it un-acked", msg.topic)
            self.tally.bump("errors")
            return None


@dataclass(frozen=True)
class _Staged:
    """A message's result inside the batch transaction; `error`: dead-lettered because a handler raised."""

    result: IngestResult
    error: bool = False
