"""MessageHandler with an in-memory SQLite store and plain `Inbound` values: no broker, no threads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

import gridwatch.central.handler as handler_module
import gridwatch.central.ingest_batch as ingest_batch_module
from gridwatch.central.categories import load_categories
from gridwatch.central.handler import MessageHandler
from gridwatch.central.roster import Roster
from gridwatch.central.store import Case, DeadLetter, DispatchRow, Store, open_store
from gridwatch.central.transport import Inbound
from tests.central.factories import GRID_A, lifecycle, make_event, payload

TOPIC = "gridwatch/v1/site-1/gw-1/cam-1/incident"


@pytest.fixture
def memory_store() -> Iterator[Store]:
    with open_store("sqlite://") as store:
        yield store


def make_handler(store: Store, pause: object = None) -> MessageHandler:
    roster = Roster(default_cleaner="desk", cells={GRID_A: "cleaner-a"})
    kw = {"pause": pause} if pause is not None else {}
    return MessageHandler(store, load_categories(), roster, prefix="gridwatch/v1", **kw)  # type: ignore[arg-type]


def rows(store: Store, model: type[object]) -> list[object]:
    with store.session() as session:
        return list(session.scalars(select(model)))  # type: ignore[call-overload]


def test_lifecycle_duplicate_and_garbage_are_counted(memory_store: Store) -> None:
    handler = make_handler(memory_store)
    events = lifecycle("inc-handler-1", updates=1)
    kinds = [handler.handle(Inbound(TOPIC, payload(e))) for e in events]
    kinds.append(handler.handle(Inbound(TOPIC, payload(events[0]))))
    kinds.append(handler.handle(Inbound(TOPIC, b"{not json")))
    assert [k.kind for k in kinds if k] == ["created", "updated", "updated", "duplicate", "dead_letter"]
    snap = handler.tally.snapshot()
    assert (snap["stored"], snap["duplicates"], snap["dead_letters"], snap["errors"]) == (3, 1, 1, 0)
    assert len(rows(memory_store, DeadLetter)) == 1


def test_a_new_case_and_its_assignment_commit_together(memory_store: Store) -> None:
    """Defect 3: the assignment is in the dispatch outbox as soon as the case exists (one transaction), so a
    crash right after the commit cannot lose it; updates of the case add none."""
    handler = make_handler(memory_store)
    first, *rest = lifecycle("inc-handler-2", updates=2)
    result = handler.handle(Inbound(TOPIC, payload(first)))
    assert result is not None and result.dispatch is not None
    [row] = rows(memory_store, DispatchRow)
    assert isinstance(row, DispatchRow)
    assert row.assignment_id == str(result.dispatch.assignment_id)
    assert row.topic == "gridwatch/v1/dispatch/cleaner-a"
    assert json.loads(row.payload)["case_number"] == result.case_number
    for event in rest:
        handler.handle(Inbound(TOPIC, payload(event)))
    assert len(rows(memory_store, DispatchRow)) == 1


def test_a_failed_commit_leaves_neither_case_nor_assignment(
    memory_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = make_handler(memory_store, pause=lambda _delay: True)  # the service is stopping
    real_enqueue = handler_module.enqueue_assignment

    def database_gone(session: object, *args: object) -> None:
        real_enqueue(session, *args)  # type: ignore[arg-type]
        raise OperationalError("INSERT ...", {}, ConnectionError("database is down"))

    real_enqueue_many = ingest_batch_module.enqueue_assignments

    def database_gone_many(session: object, *args: object) -> None:
        real_enqueue_many(session, *args)  # type: ignore[arg-type]
        raise OperationalError("INSERT ...", {}, ConnectionError("database is down"))

    monkeypatch.setattr(handler_module, "enqueue_assignment", database_gone)  # one savepoint per message
    monkeypatch.setattr(ingest_batch_module, "enqueue_assignments", database_gone_many)  # the batch path
    assert handler.handle(Inbound(TOPIC, payload(make_event("inc-handler-3")))) is None  # not acked
    assert (rows(memory_store, Case), rows(memory_store, DispatchRow)) == ([], [])


def test_a_database_outage_is_retried_until_it_ends(memory_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real_ingest = handler_module.ingest_incident_batch
    failures = iter([True, True, False])
    delays: list[float] = []

    def flaky(*args: object, **kw: object) -> object:
        if next(failures):
            raise OperationalError("SELECT ...", {}, ConnectionError("database is down"))
        return real_ingest(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(handler_module, "ingest_incident_batch", flaky)
    handler = make_handler(memory_store, pause=lambda delay: delays.append(delay) or False)
    result = handler.handle(Inbound(TOPIC, payload(make_event("inc-handler-4"))))
    assert result is not None and result.kind == "created"
    assert delays == [0.1, 0.2]


def test_a_write_race_is_retried_then_dead_lettered(memory_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def always_racing(*_a: object, **_kw: object) -> object:
        raise IntegrityError("INSERT ...", {}, Exception("UNIQUE constraint failed"))

    monkeypatch.setattr(handler_module, "ingest_incident_batch", always_racing)  # then one savepoint each
    monkeypatch.setattr(handler_module, "ingest_incident", always_racing)
    handler = make_handler(memory_store)
    result = handler.handle(Inbound(TOPIC, payload(make_event("inc-handler-5"))))
    assert result is not None and result.kind == "dead_letter"
    assert handler.tally.snapshot()["errors"] == 1


def test_a_handler_bug_is_dead_lettered(memory_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*_a: object, **_kw: object) -> object:
        raise RuntimeError("bug in a handler")

    monkeypatch.setattr(handler_module, "ingest_incident_batch", bug)  # then one savepoint each
    monkeypatch.setattr(handler_module, "ingest_incident", bug)
    handler = make_handler(memory_store)
    result = handler.handle(Inbound(TOPIC, payload(make_event("inc-handler-6"))))
    assert result is not None and result.kind == "dead_letter"
    [letter] = rows(memory_store, DeadLetter)
    assert isinstance(letter, DeadLetter) and "bug in a handler" in letter.error
    with memory_store.session() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 0


# --- issue 8, hole 6: the events log is bounded ------------------------------------------------------------------


def test_the_events_log_cuts_long_lines_and_rotates(tmp_path: Path) -> None:
    from gridwatch.central.handler import EventsLog

    log = EventsLog(tmp_path / "events.jsonl", max_bytes=1000, backups=2, max_line_bytes=100)
    for _ in range(30):
        log.append(b"x" * 5000)
    log.close()

    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    assert all((tmp_path / f).stat().st_size <= 1000 for f in files)
    assert log.cut == 30 and log.rotations > 0
    line = (tmp_path / "events.jsonl").read_bytes().splitlines()[0]
    assert line.startswith(b"x" * 100) and b"cut: 5000 bytes, sha256" in line
