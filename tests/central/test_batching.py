"""Batch commits (issue 8, ingest rate): many messages in one transaction, a savepoint each, acknowledged only
after the commit. Handler tests run on SQLite and PostgreSQL (`store` fixture); the service tests use the
FakeSession; the last test runs a real Mosquitto."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import gridwatch.central.handler as handler_module
from gridwatch.app.broker import MosquittoBroker
from gridwatch.central.categories import load_categories
from gridwatch.central.dispatch import DispatchOutbox
from gridwatch.central.handler import MessageHandler
from gridwatch.central.roster import Roster
from gridwatch.central.service import CentralError, CentralService
from gridwatch.central.store import Case, DeadLetter, DispatchRow, EventRow, Store, open_store
from gridwatch.central.transport import FakeSession, Inbound
from tests.central.factories import GRID_A, lifecycle, make_event, payload
from tests.central.mqtt_helpers import connected, publish

TOPIC = "gridwatch/v1/site-1/gw-1/cam-1/incident"
ROSTER = Roster(default_cleaner="desk", cells={GRID_A: "cleaner-a"})


def make_handler(store: Store, pause: Any = None) -> MessageHandler:
    kw = {"pause": pause} if pause is not None else {}
    return MessageHandler(store, load_categories(), ROSTER, prefix="gridwatch/v1", **kw)


def inbound(*events: Any) -> list[Inbound]:
    return [Inbound(TOPIC, payload(e) if not isinstance(e, bytes) else e, mid) for mid, e in enumerate(events, 1)]


def state(store: Store) -> dict[str, Any]:
    """What a run left in the store, without ids, times and case numbers."""
    with store.session() as session:
        cases = {
            c.incident_id: (c.status, c.last_seq, c.ended_at is not None, [t.step for t in c.timeline])
            for c in session.scalars(select(Case))
        }
        counts = {m.__name__: int(session.scalar(select(func.count()).select_from(m)) or 0)
                  for m in (EventRow, DeadLetter, DispatchRow)}
    return {"cases": cases, **counts}


@pytest.fixture
def commits(store: Store) -> Iterator[list[int]]:
    """Counts the transactions committed on `store`'s engine."""
    seen: list[int] = []

    def on_commit(_conn: object) -> None:
        seen.append(1)

    event.listen(store.engine, "commit", on_commit)
    yield seen
    event.remove(store.engine, "commit", on_commit)


def mixed_batch() -> list[Inbound]:
    """A lifecycle, a second incident, a redelivered event, a late (stale) update, garbage and a bad topic."""
    a = lifecycle("inc-batch-0001", updates=2)  # started, updated, updated, ended
    b = make_event("inc-batch-0002")
    late = make_event("inc-batch-0001", 1, "updated")
    wrong_topic = Inbound("gridwatch/v1/site-2/gw-1/cam-1/incident", payload(make_event("inc-batch-0003")))
    return [*inbound(a[0], a[1], b, a[1], a[3], late, b"{not json", a[2]), wrong_topic]


# --- the handler -------------------------------------------------------------------------------------------------
def test_a_batch_is_one_transaction_and_behaves_as_its_messages_one_by_one(store: Store, commits: list[int]) -> None:
    msgs = mixed_batch()
    batched = make_handler(store).handle_batch(msgs)
    assert len(commits) == 1
    with open_store("sqlite://") as alone_store:
        alone = make_handler(alone_store)
        alone.batch_incidents = False  # the reference: ingest_incident, one savepoint per message
        singles = [alone.handle(m) for m in msgs]
        expected = state(alone_store)
    kinds = [r.kind if r else None for r in batched]
    assert kinds == [r.kind if r else None for r in singles]
    assert kinds == ["created", "updated", "created", "duplicate", "updated", "stale", "dead_letter", "stale",
                     "dead_letter"]
    assert state(store) == expected
    assert expected["cases"]["inc-batch-0001"][1] == 3  # the ended (seq 3) applied, the later seq 1/2 not


def test_duplicates_inside_one_batch_are_duplicates(store: Store) -> None:
    first, second = lifecycle("inc-batch-0010", updates=1)[:2]
    handler = make_handler(store)
    results = handler.handle_batch(inbound(first, first, second, second, first))
    assert [r.kind if r else None for r in results] == ["created", "duplicate", "updated", "duplicate", "duplicate"]
    snap = handler.tally.snapshot()
    assert (snap["stored"], snap["duplicates"], snap["errors"]) == (2, 3, 0)
    after = state(store)
    assert (after["EventRow"], after["DispatchRow"], len(after["cases"])) == (2, 1, 1)


def test_a_failing_message_rolls_back_only_itself(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """One savepoint per message (the reference path): the bad message changed the case before it raised; its
    savepoint undoes that, the rest of the batch stays."""
    real = handler_module.ingest_incident
    events = lifecycle("inc-batch-0020", updates=2)
    poison = events[1].event_id

    def half_then_raise(session: Session, topic: str, body: bytes, *a: Any, **kw: Any) -> Any:
        result = real(session, topic, body, *a, **kw)
        if str(poison) in body.decode():
            session.flush()  # its event row and the case update are in the database, inside the savepoint
            raise RuntimeError("bug after the case was changed")
        return result

    monkeypatch.setattr(handler_module, "ingest_incident", half_then_raise)
    handler = make_handler(store)
    handler.batch_incidents = False
    other = make_event("inc-batch-0021")
    results = handler.handle_batch(inbound(events[0], events[1], other, events[2]))
    assert [r.kind if r else None for r in results] == ["created", "dead_letter", "created", "updated"]
    after = state(store)
    _, last_seq, _, steps = after["cases"]["inc-batch-0020"]
    assert last_seq == 2 and steps.count("updated") == 1  # only seq 2's update; seq 1's was rolled back
    assert after["EventRow"] == 3 and after["DeadLetter"] == 1 and len(after["cases"]) == 2
    with store.session() as session:
        assert session.get(EventRow, str(poison)) is None
        [letter] = session.scalars(select(DeadLetter))
        assert "bug after the case was changed" in letter.error
    assert handler.tally.snapshot()["errors"] == 1


def poison_event_inserts(store: Store, event_id: str) -> None:
    """A trigger that makes the database refuse the `events` row of `event_id` (a value it will not store)."""
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            conn.exec_driver_sql(f"CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.event_id = '{event_id}' "
                                 "BEGIN SELECT RAISE(ABORT, 'poisoned event'); END")
            return
        conn.exec_driver_sql(f"CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN IF NEW.event_id = '{event_id}' "
                             "THEN RAISE EXCEPTION 'poisoned event'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
        conn.exec_driver_sql("CREATE TRIGGER poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION poison()")


def test_a_message_the_database_refuses_in_the_batch_path_is_dead_lettered_alone(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch path writes a run with one INSERT per table; the database refuses one event row, so the run's
    savepoint is rolled back and the run goes again one savepoint per message: only that message is a dead letter,
    the updates before and after it (same incident, same batch) and the other incident are stored."""
    events = lifecycle("inc-batch-0025", updates=2)
    poison_event_inserts(store, str(events[1].event_id))
    handler = make_handler(store)
    other = make_event("inc-batch-0026")
    with caplog.at_level("WARNING", logger="gridwatch.central"):
        results = handler.handle_batch(inbound(events[0], events[1], other, events[2], events[3]))
    assert "the batch path failed on 5 message(s)" in caplog.text
    assert [r.kind if r else None for r in results] == ["created", "dead_letter", "created", "updated", "updated"]
    after = state(store)
    _status, last_seq, ended, steps = after["cases"]["inc-batch-0025"]
    assert (last_seq, ended, steps.count("updated")) == (3, True, 1)  # seq 2 and the end; never seq 1
    assert after["EventRow"] == 4 and after["DeadLetter"] == 1 and after["DispatchRow"] == 2
    with store.session() as session:
        assert session.get(EventRow, str(events[1].event_id)) is None
        [letter] = session.scalars(select(DeadLetter))
        assert "poisoned event" in letter.error
    assert handler.tally.snapshot()["errors"] == 1
    again = handler.handle_batch(inbound(events[0], events[2], other))  # a redelivery: the batch path again
    assert [r.kind if r else None for r in again] == ["duplicate", "duplicate", "duplicate"]


def test_a_failed_commit_keeps_nothing_and_the_redelivery_is_idempotent(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash (here: the database gone while stopping) before the batch's commit: no message of the batch is
    stored, even those whose savepoint was released (on SQLite a released outermost savepoint commits unless the
    transaction was begun first), none may be acknowledged; the redelivered batch is stored once, then is all
    duplicates."""
    msgs = mixed_batch()

    def database_gone(session: Session) -> None:
        if not session.in_nested_transaction():  # every savepoint is released; the transaction's commit fails
            raise OperationalError("COMMIT", {}, ConnectionError("database is down"))

    event.listen(Session, "before_commit", database_gone)
    try:
        assert make_handler(store, pause=lambda _d: True).handle_batch(msgs) == [None] * len(msgs)
    finally:
        event.remove(Session, "before_commit", database_gone)
    assert state(store) == {"cases": {}, "EventRow": 0, "DeadLetter": 0, "DispatchRow": 0}
    handler = make_handler(store)
    redelivered = handler.handle_batch(msgs)
    assert [r.kind if r else None for r in redelivered][:3] == ["created", "updated", "created"]
    once = state(store)
    again = handler.handle_batch(msgs)
    assert {r.kind for r in again if r} == {"duplicate", "dead_letter"}
    assert state(store) == {**once, "DeadLetter": once["DeadLetter"] * 2}  # garbage is noted each time it comes


@pytest.mark.parametrize("batch_path", [True, False])
def test_an_outage_mid_batch_retries_the_whole_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch, batch_path: bool
) -> None:
    name = "ingest_incident_batch" if batch_path else "ingest_incident"
    real = getattr(handler_module, name)
    failures = iter([False, True]) if not batch_path else iter([True])  # the database is gone mid-batch

    def flaky(*args: Any, **kw: Any) -> Any:
        if next(failures, False):
            raise OperationalError("SELECT ...", {}, ConnectionError("database is down"))
        return real(*args, **kw)

    monkeypatch.setattr(handler_module, name, flaky)
    delays: list[float] = []
    events = lifecycle("inc-batch-0030", updates=1)
    handler = make_handler(store, pause=lambda d: delays.append(d) or False)
    handler.batch_incidents = batch_path
    results = handler.handle_batch(inbound(*events))
    assert [r.kind if r else None for r in results] == ["created", "updated", "updated"]
    assert delays == [0.1] and state(store)["EventRow"] == 3


# --- the service: batch boundaries and acknowledgement after the commit --------------------------------------------
def make_service(tmp_path: Path, session: FakeSession | None = None, **kw: Any) -> CentralService:
    fake = session or FakeSession()
    return CentralService("mqtt://127.0.0.1:1", f"sqlite:///{tmp_path / 'cases.db'}", prefix="gridwatch/v1",
                          roster=ROSTER, session=lambda: fake, **kw)


def test_a_batch_takes_at_most_batch_size_messages(tmp_path: Path) -> None:
    service = make_service(tmp_path, batch_size=3, batch_ms=1000)
    for msg in inbound(*[make_event(f"inc-bound-{i:04d}") for i in range(7)]):
        service._inbox.put(msg)
    sizes = [len(service._next_batch()) for _ in range(3)]
    assert sizes == [3, 3, 1]
    assert service._next_batch() == []  # nothing waiting: an empty batch after the 0.2 s poll


def test_a_batch_waits_batch_ms_for_more_and_no_longer(tmp_path: Path) -> None:
    service = make_service(tmp_path, batch_size=10, batch_ms=150)
    first, late = inbound(*[make_event(f"inc-wait-{i:04d}") for i in range(2)])
    service._inbox.put(first)
    threading.Timer(0.01, service._inbox.put, (late,)).start()
    t0 = time.monotonic()
    batch = service._next_batch()
    assert batch == [first, late]
    assert time.monotonic() - t0 >= 0.15  # it waited the whole batch_ms for a third
    zero = make_service(tmp_path, batch_size=10, batch_ms=0)
    zero._inbox.put(first)
    zero._inbox.put(late)
    assert zero._next_batch() == [first, late]  # batch_ms 0 still takes what is already waiting


@pytest.mark.parametrize(("size", "ms"), [(0, 50), (40000, 50), (10, -1), (10, float("nan"))])
def test_bad_batch_settings_are_refused(tmp_path: Path, size: int, ms: float) -> None:
    with pytest.raises(CentralError, match="batch"):
        make_service(tmp_path, batch_size=size, batch_ms=ms)


class CountingAtAck(FakeSession):
    """Notes how many cases were committed when each message was acknowledged."""

    def __init__(self) -> None:
        super().__init__()
        self.cases_at_ack: list[int] = []
        self.service: CentralService | None = None

    def ack(self, msg: Inbound) -> None:
        assert self.service is not None
        with self.service.store.session() as session:
            self.cases_at_ack.append(int(session.scalar(select(func.count()).select_from(Case)) or 0))
        super().ack(msg)


def test_every_message_of_a_batch_is_acked_after_the_batch_commit(tmp_path: Path) -> None:
    session = CountingAtAck()
    service = make_service(tmp_path, session, batch_size=5, batch_ms=2000)
    session.service = service
    with service:
        mids = [session.deliver(TOPIC, payload(make_event(f"inc-ack-{i:04d}"))).mid for i in range(5)]
        assert service.wait_for(lambda: service.counters.stored == 5, 10)
        deadline = time.monotonic() + 5
        while len(session.acked) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert session.acked == mids
    assert session.cases_at_ack == [5] * 5  # not one acknowledged before all five were committed


def test_a_batch_not_committed_at_stop_is_not_acked_and_comes_again(tmp_path: Path) -> None:
    """The database is gone until central stops: nothing acknowledged; the broker's redelivery to the next start
    stores each event once."""
    events = [make_event(f"inc-crash-{i:04d}") for i in range(4)]
    first = FakeSession()

    def database_gone(session: Session) -> None:
        if not session.in_nested_transaction():
            raise OperationalError("COMMIT", {}, ConnectionError("database is down"))

    event.listen(Session, "before_commit", database_gone)
    try:
        with make_service(tmp_path, first, batch_size=10, batch_ms=100) as service:
            for e in events:
                first.deliver(TOPIC, payload(e))
            assert service.wait_for(lambda: service.counters.received == 4, 5)
            time.sleep(0.3)  # the batch is being retried
    finally:
        event.remove(Session, "before_commit", database_gone)
    assert first.acked == []
    second = FakeSession()
    with make_service(tmp_path, second, batch_size=10, batch_ms=100) as service:
        for e in [*events, events[0]]:  # redelivered, one of them twice
            second.deliver(TOPIC, payload(e))
        assert service.wait_for(lambda: service.counters.stored == 4 and service.counters.duplicates == 1, 10)
        deadline = time.monotonic() + 5
        while len(second.acked) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(second.acked) == 5
        with service.store.session() as s:
            assert s.scalar(select(func.count()).select_from(EventRow)) == 4


# --- a real broker ------------------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_a_real_broker_fills_batches_beyond_its_inflight_window_and_forgets_acked_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """120 events queued for central's persistent session while it is away: central asks for 2 x batch_size
    un-acknowledged messages (Receive Maximum), so a batch holds 50 (Mosquitto alone would send 20); after the
    commits every message is acknowledged: the next start gets nothing again."""
    sizes: list[int] = []
    real = MessageHandler.handle_batch

    def recording(self: MessageHandler, msgs: Any) -> Any:
        sizes.append(len(msgs))
        return real(self, msgs)

    monkeypatch.setattr(MessageHandler, "handle_batch", recording)
    events = [e for i in range(30) for e in lifecycle(f"inc-real-{i:04d}", updates=2)]
    with MosquittoBroker() as broker:
        def service() -> CentralService:
            return CentralService(broker.url, f"sqlite:///{tmp_path / 'cases.db'}", prefix="gridwatch/v1",
                                  client_id="central-batch-test", roster=ROSTER, batch_size=50, batch_ms=2000)

        with service():
            pass  # the persistent session now exists on the broker
        with connected(broker.url, name="edge-batch") as edge:
            for e in events:
                publish(edge, TOPIC, payload(e))
        with service() as svc:
            assert svc.wait_for(lambda: svc.counters.stored == 120, 60), svc.snapshot()
            time.sleep(0.5)  # the last PUBACKs reach the broker
        assert max(sizes) == 50 and sum(sizes) == 120, sizes
        sizes.clear()
        with service() as svc:
            time.sleep(1.0)
            assert svc.snapshot()["received"] == 0
            with svc.store.session() as session:
                assert session.scalar(select(func.count()).select_from(EventRow)) == 120
                assert {c.last_seq for c in session.scalars(select(Case))} == {3}


# --- the dispatch outbox's bookkeeping goes into the worker's transactions -------------------------------------
def test_a_pubacked_assignment_leaves_the_books_at_once_and_is_stamped_with_the_next_commit(store: Store) -> None:
    """paho's network thread only notes the PUBACK (SQLite's write lock may be held by a batch); the row is not
    offered again, and is stamped acknowledged in the next batch transaction; a batch that does not commit keeps
    the note."""
    handler = make_handler(store)
    handler.outbox = outbox = DispatchOutbox(store)
    handler.handle_batch(inbound(make_event("inc-books-0001"), make_event("inc-books-0002")))
    first, second = outbox.pending()
    outbox.mark_attempt(first.id)
    outbox.mark_attempt(second.id)
    outbox.ack(first.id)
    assert [item.id for item in outbox.pending()] == [second.id] and len(outbox) == 1
    assert [item.attempts for item in outbox.pending()] == [1]
    assert state(store)["DispatchRow"] == 2  # nothing written yet

    def database_gone(session: Session) -> None:
        if not session.in_nested_transaction():
            raise OperationalError("COMMIT", {}, ConnectionError("database is down"))

    event.listen(Session, "before_commit", database_gone)
    try:
        failing = make_handler(store, pause=lambda _d: True)
        failing.outbox = outbox
        assert failing.handle_batch(inbound(make_event("inc-books-0003"))) == [None]
    finally:
        event.remove(Session, "before_commit", database_gone)
    assert state(store)["DispatchRow"] == 2 and outbox.has_bookkeeping()
    handler.handle_batch(inbound(make_event("inc-books-0004")))  # the next batch writes it
    assert not outbox.has_bookkeeping()
    with store.session() as session:
        rows = {row.id: (row.attempts, row.acked_at is not None) for row in session.scalars(select(DispatchRow))}
    # the acknowledged row stays, stamped, to be sent again if the broker crashes before saving it
    assert rows[first.id] == (1, True) and rows[second.id] == (1, False) and len(rows) == 3  # + -0004's
    assert [item.id for item in outbox.pending()] == [second.id, max(rows)]


def test_bookkeeping_is_one_update_however_many_rows(store: Store) -> None:
    """Issue 8: the bookkeeping goes into every batch transaction, so its cost must not grow with the number of
    PUBACKs and attempts: one UPDATE (run once for all) stamps the acknowledged rows and adds the attempts, and
    at most once a minute one DELETE removes rows acknowledged more than `replay_s` ago. An attempt noted after
    its row's PUBACK (paho may report the PUBACK before `publish()` returns) is counted all the same."""
    handler = make_handler(store)
    handler.outbox = outbox = DispatchOutbox(store)
    handler.handle_batch(inbound(*[make_event(f"inc-books2-{i:04d}") for i in range(30)]))
    items = outbox.pending()
    assert len(items) == 30
    for item in items[:20]:  # acknowledged, half of them before their attempt was noted
        if item.id % 2:
            outbox.ack(item.id)
            outbox.mark_attempt(item.id)
        else:
            outbox.mark_attempt(item.id)
            outbox.ack(item.id)
    for item in items[20:]:  # sent (twice for some), not acknowledged yet
        for _ in range(1 + item.id % 2):
            outbox.mark_attempt(item.id)
    statements: list[str] = []
    texts: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        statements.append(statement.split()[0])
        texts.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        handler.write_bookkeeping()
        first = [s for s in statements if s in ("DELETE", "UPDATE")]
        outbox.ack(items[20].id)
        handler.write_bookkeeping()  # within the minute: no DELETE
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert first == ["UPDATE"]  # the batch before pruned already: no DELETE within the minute
    assert [s for s in statements if s in ("DELETE", "UPDATE")] == ["UPDATE", "UPDATE"]
    if store.engine.dialect.name == "postgresql":  # one statement for all rows, not one execution per row
        assert all("unnest" in t for t in texts if t.startswith("UPDATE"))
    assert not outbox.has_bookkeeping()
    with store.session() as session:
        rows = {row.id: (row.attempts, row.acked_at is not None) for row in session.scalars(select(DispatchRow))}
    assert rows == {item.id: (1 + item.id % 2 if i >= 20 else 1, i <= 20) for i, item in enumerate(items)}
    outbox.mark_attempt(items[25].id)  # attempts only, no PUBACK in the write (PostgreSQL: an array of NULLs)
    handler.write_bookkeeping()
    with store.session() as session:
        again = session.get(DispatchRow, items[25].id)
        assert again is not None and (again.attempts, again.acked_at) == (2 + items[25].id % 2, None)


def test_an_acknowledged_assignment_is_sent_again_after_a_reconnect_then_pruned(store: Store) -> None:
    """A broker that crashes before its next save loses assignments it acknowledged: after every reconnect the
    rows acknowledged within `replay_s` before the drop are due again (also PUBACKs not written yet), older ones
    are not, a row acknowledged again after the reconnect is not due a third time, and rows acknowledged more
    than `replay_s` ago are deleted by the bookkeeping."""
    now = [1000.0]
    handler = make_handler(store)
    handler.outbox = outbox = DispatchOutbox(store, replay_s=100.0, clock=lambda: now[0])
    outbox.connected()  # the first connect: nothing acknowledged yet
    handler.handle_batch(inbound(*[make_event(f"inc-replay-{i:04d}") for i in range(4)]))
    old, written, unwritten, open_row = (item.id for item in outbox.pending())
    outbox.ack(old)
    handler.write_bookkeeping()
    now[0] = 1150.0
    outbox.ack(written)
    handler.write_bookkeeping()
    now[0] = 1160.0
    outbox.ack(unwritten)
    assert [item.id for item in outbox.pending()] == [open_row]
    outbox.disconnected()
    now[0] = 1200.0
    outbox.connected()  # window: acknowledged at 1060 .. 1200
    assert [item.id for item in outbox.pending()] == [written, unwritten, open_row]
    now[0] = 1201.0
    for item_id in (written, unwritten, open_row):
        outbox.ack(item_id)
    assert outbox.pending() == [] and len(outbox) == 0
    handler.write_bookkeeping()
    assert outbox.pending() == []  # stamped at 1201: after the window
    now[0] = 1290.0
    handler.write_bookkeeping()  # prunes what was acknowledged before 1190: `old` (1000)
    with store.session() as session:
        assert set(session.scalars(select(DispatchRow.id))) == {written, unwritten, open_row}


def test_a_first_connect_replays_before_the_newest_acknowledgement(store: Store) -> None:
    """A central that went down with the broker: on its first connect it replays the rows acknowledged within
    `replay_s` before the newest PUBACK in the table, however long it was down."""
    now = [1000.0]
    handler = make_handler(store)
    handler.outbox = outbox = DispatchOutbox(store, replay_s=100.0, clock=lambda: now[0])
    handler.handle_batch(inbound(*[make_event(f"inc-first-{i:04d}") for i in range(3)]))
    a, b, c = (item.id for item in outbox.pending())
    outbox.ack(a)
    handler.write_bookkeeping()
    now[0] = 1500.0
    outbox.ack(b)
    outbox.ack(c)
    handler.write_bookkeeping()
    now[0] = 5000.0  # a new central process, hours later
    restarted = DispatchOutbox(store, replay_s=100.0, clock=lambda: now[0])
    restarted.connected()
    assert [item.id for item in restarted.pending()] == [b, c]


def test_a_server_lost_in_the_middle_of_a_pipelined_run_retries_the_whole_batch(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL: the batch path's writes go as one pipeline (`pg_bulk.Pipeline`). The server process dies while
    it runs them (a trigger terminates its own backend, once); that is a database outage, not a bad message: the
    connection is dropped from the pool, the batch is rolled back and retried whole on a new connection, and every
    event is stored once, with no dead letter."""
    events = lifecycle("inc-batch-0040", updates=2)
    other = make_event("inc-batch-0041")
    with open_store(pg_url) as store:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("CREATE SEQUENCE lose_once")
            conn.exec_driver_sql(
                "CREATE FUNCTION lose_server() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.event_id = '{events[2].event_id}' AND nextval('lose_once') = 1 THEN "
                "PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
            conn.exec_driver_sql("CREATE TRIGGER lose_server BEFORE INSERT ON events FOR EACH ROW "
                                 "EXECUTE FUNCTION lose_server()")
        handler = make_handler(store, pause=lambda _delay: False)  # retry at once
        with caplog.at_level("WARNING", logger="gridwatch.central"):
            results = handler.handle_batch(inbound(events[0], events[1], other, events[2], events[3]))
        assert "database unavailable" in caplog.text and "batch path failed" not in caplog.text
        assert [r.kind if r else None for r in results] == ["created", "updated", "created", "updated", "updated"]
        after = state(store)
    assert (after["EventRow"], after["DeadLetter"], after["DispatchRow"]) == (5, 0, 2)
    assert after["cases"]["inc-batch-0040"][1:3] == (3, True)
