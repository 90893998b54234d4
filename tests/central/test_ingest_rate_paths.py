"""The cheaper paths behind central's ingest rate (issue 8): paho's socket read in large chunks, a committed batch's
PUBACKs written as one, the start-up heap out of the garbage collector's way, and PostgreSQL rows as arrays; each
must deliver exactly what the plain path does."""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

import gridwatch.central.store as store_module
from gridwatch.app.broker import MosquittoBroker
from gridwatch.app.poll import wait_until
from gridwatch.central import pg_bulk
from gridwatch.central.dispatch import OUTBOX
from gridwatch.central.service import GC_GEN0_THRESHOLD, CentralService, settle_heap
from gridwatch.central.store import Case, DeadLetter, EventRow, TimelineRow, open_store
from gridwatch.central.transport import RECV_CHUNK, BufferedSocket, Inbound, MqttSession
from gridwatch.wire.mqtt import BrokerURL
from tests.central.factories import lifecycle, payload
from tests.central.mqtt_helpers import connected, publish
from tests.central.test_batching import ROSTER, TOPIC, poison_event_inserts


class CountingSocket:
    """A socket that counts its `recv` calls."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.calls = sock, 0

    def recv(self, n: int) -> bytes:
        self.calls += 1
        return self.sock.recv(n)

    def fileno(self) -> int:
        return self.sock.fileno()


def packet(body: bytes) -> bytes:
    """An MQTT-like frame: a type byte, the remaining length (variable-length integer), the body."""
    length, out = len(body), bytearray([0x30])
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out) + body


def read_like_paho(sock: Any) -> bytes:
    """One frame the way paho reads it: one byte, the length byte by byte, then the body."""
    head = sock.recv(1)
    length, mult = 0, 1
    while True:
        byte = sock.recv(1)[0]
        length += (byte & 127) * mult
        mult *= 128
        if not byte & 128:
            break
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return head + body


def test_the_buffered_socket_serves_pahos_small_reads_from_few_system_calls() -> None:
    a, b = socket.socketpair()
    with a, b:
        bodies = [bytes([i]) * size for i, size in enumerate([0, 1, 127, 128, 700, 16_384])]
        a.sendall(b"".join(packet(body) for body in bodies))
        inner = CountingSocket(b)
        buffered = BufferedSocket(inner)
        assert read_like_paho(buffered)[1:] == bodies[0]
        assert buffered.pending() > 0  # the rest arrived with the first recv: paho's loop must not wait in select
        assert [read_like_paho(buffered)[1:] for _ in bodies[1:]] == bodies[1:]
        assert inner.calls <= 3 and buffered.pending() == 0  # paho alone: 3-4 calls per frame
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            buffered.recv(1)
        a.close()
        assert buffered.recv(1) == b""  # end of stream reaches paho as it would without the buffer
        assert buffered.fileno() == b.fileno()  # everything else is the socket's


class Collector:
    """A `SessionHandler` that keeps what arrives."""

    def __init__(self) -> None:
        self.msgs: list[Inbound] = []
        self.subscribed = threading.Event()
        self.changed = threading.Condition()

    def on_connected(self) -> None: ...

    def on_subscribed(self, refused: list[str]) -> None:
        self.subscribed.set()

    def on_disconnected(self) -> None: ...

    def on_ack(self, mid: int, reason_code: int) -> None: ...

    def on_message(self, msg: Inbound) -> None:
        with self.changed:
            self.msgs.append(msg)
            self.changed.notify_all()

    def wait(self, n: int, timeout: float = 30) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.msgs) >= n, timeout)


@contextmanager
def subscribed(broker: MosquittoBroker, client_id: str) -> Iterator[tuple[MqttSession, Collector]]:
    """Central's own MQTT session (persistent, manual acknowledgement), subscribed to the incident topics."""
    session, collector = MqttSession(BrokerURL.parse(broker.url), client_id, receive_maximum=1000), Collector()
    session.connect(collector)
    try:
        assert wait_until(lambda: session.connected, 10)
        session.subscribe(["gridwatch/v1/+/+/+/incident"])
        assert collector.subscribed.wait(10)
        yield session, collector
    finally:
        session.stop()


@pytest.mark.e2e
def test_a_real_broker_delivers_every_size_through_the_buffered_socket_and_one_write_acks_them_all() -> None:
    """Sizes around the length encoding's steps and above one read's chunk arrive intact and in order; the batch's
    PUBACKs, written as one, settle every message: the session gets none of them again."""
    sizes = [0, 1, 127, 128, 16_383, 16_384, RECV_CHUNK + 10, 3, 700] * 4
    bodies = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    with MosquittoBroker() as broker:
        with subscribed(broker, "central-buffered") as (session, collector):
            assert isinstance(session._client._sock, BufferedSocket)
            with connected(broker.url, name="edge-buffered") as edge:
                for body in bodies:
                    publish(edge, TOPIC, body)
            assert collector.wait(len(bodies))
            assert [m.payload for m in collector.msgs] == bodies
            session.ack_many(collector.msgs)
            time.sleep(0.5)  # the PUBACKs reach the broker (nothing to wait on: the broker says nothing back)
        with subscribed(broker, "central-buffered") as (_session, again):
            with connected(broker.url, name="edge-buffered") as edge:
                publish(edge, TOPIC, b"after")
            assert again.wait(1)
            assert [m.payload for m in again.msgs] == [b"after"]  # nothing of the first batch came back


def test_messages_of_an_earlier_connection_are_not_acknowledged() -> None:
    """A PUBACK for a message of a connection that dropped would name a packet id of another message."""
    session = MqttSession(BrokerURL.parse("mqtt://127.0.0.1:1"), "central-generations")
    queued: list[bytes] = []
    session._client._packet_queue = lambda _c, data, *_a: queued.append(bytes(data))  # type: ignore[method-assign]
    session.connected, session._generation = True, 2
    session.ack_many([Inbound(TOPIC, b"", 7, 1, generation=1), Inbound(TOPIC, b"", 8, 1, generation=2),
                      Inbound(TOPIC, b"", 9, 0, generation=2), Inbound(TOPIC, b"", 300, 1, generation=2)])
    assert queued == [bytes([0x40, 2, 0, 8, 0x40, 2, 1, 44])]  # PUBACK 8 and PUBACK 300, one write
    session.connected = False
    session.ack_many([Inbound(TOPIC, b"", 10, 1, generation=2)])
    assert len(queued) == 1


def test_settle_heap_freezes_start_up_objects_and_collects_the_young_less_often() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.e2e
def test_a_row_the_database_refuses_mid_batch_through_a_real_broker(db_url: str, tmp_path: Path) -> None:
    """Issue 8's batch path end to end: nine events in one batch, the fifth refused by the database (PostgreSQL:
    the arrays statement; SQLite: executemany). That one is dead-lettered, the other eight are stored, each once,
    and all nine are acknowledged after the commit: a restart of central gets none of them again."""
    events = [e for i in range(3) for e in lifecycle(f"inc-midbatch-{i:04d}", updates=1)]
    with open_store(db_url) as store:
        poison_event_inserts(store, str(events[4].event_id))
    with MosquittoBroker() as broker:
        def central() -> CentralService:
            return CentralService(broker.url, db_url, prefix="gridwatch/v1", client_id="central-midbatch",
                                  roster=ROSTER, batch_size=9, batch_ms=3000)

        with central():
            pass  # the persistent session exists: the burst queues for it
        with connected(broker.url, name="edge-midbatch") as edge:
            for e in events:
                publish(edge, TOPIC, payload(e))
        with central() as svc:
            assert svc.wait_for(lambda: svc.counters.stored + svc.counters.dead_letters == 9, 30), svc.snapshot()
            time.sleep(0.5)  # the PUBACKs reach the broker
        with central() as svc:
            time.sleep(1.0)
            assert svc.snapshot()["received"] == 0
            with svc.store.session() as s:
                stored = sorted(s.scalars(select(EventRow.event_id)))
                letters = list(s.scalars(select(DeadLetter.error)))
                assert s.scalar(select(func.count()).select_from(Case)) == 3
                assert s.scalar(select(func.count()).select_from(TimelineRow)) > 0
    assert stored == sorted(str(e.event_id) for i, e in enumerate(events) if i != 4)
    assert len(letters) == 1 and "poisoned event" in letters[0]


def test_pg_bulk_sends_one_statement_text_whatever_the_number_of_rows(pg_url: str) -> None:
    """PostgreSQL: 2 rows and 300 rows go as the same statement text (psycopg converts it once and prepares it),
    NULLs, integer-valued floats and UTC times included, and the arrays update changes exactly the rows named."""
    sent: list[str] = []
    t0 = datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)

    def rows(n: int, first: int) -> list[dict[str, Any]]:
        return [{"assignment_id": f"a-{first + i:05d}", "topic": "t", "payload": bytes([i % 256]) * 3,
                 "created_at": t0 + timedelta(seconds=i), "attempts": 0, "acked_at": None if i % 2 else 5}
                for i in range(n)]

    with open_store(pg_url) as store:
        event.listen(store.engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
        with store.engine.begin() as conn:
            pg_bulk.insert_rows(conn, OUTBOX, rows(2, 0))
            pg_bulk.insert_rows(conn, OUTBOX, rows(300, 2))
            ids = [row.id for row in conn.execute(select(OUTBOX.c.id).order_by(OUTBOX.c.id).limit(3))]
            pg_bulk.update_rows(conn, OUTBOX, [{"row_id": i, "attempts": 7, "acked_at": 1.5} for i in ids],
                                by="row_id", key_column="id")
        with store.engine.connect() as conn:
            got = list(conn.execute(select(OUTBOX).order_by(OUTBOX.c.id)))
    bulk = [text for text in sent if "unnest" in text]
    assert len(bulk) == 3 and bulk[0] == bulk[1] and bulk[2].startswith("UPDATE dispatch_outbox SET")
    assert [(r.assignment_id, r.payload, r.created_at, r.acked_at) for r in got[3:5]] == [
        ("a-00003", bytes([1]) * 3, t0 + timedelta(seconds=1), None), ("a-00004", bytes([2]) * 3,
                                                                        t0 + timedelta(seconds=2), 5.0)]
    assert [(r.attempts, r.acked_at) for r in got[:4]] == [(7, 1.5)] * 3 + [(0, None)]
    assert len(got) == 302


def _pings_over_three_batches(pg_url: str, idle_s: float, monkeypatch: pytest.MonkeyPatch) -> int:
    """Pings the pool sends while a fresh store serves three sessions in a row, with `PING_IDLE_S` = `idle_s`."""
    pings: list[object] = []
    monkeypatch.setattr(store_module, "PING_IDLE_S", idle_s)
    with open_store(pg_url) as store:
        real = store.engine.dialect.do_ping
        monkeypatch.setattr(store.engine.dialect, "do_ping", lambda dbapi: pings.append(dbapi) or real(dbapi))
        for _ in range(3):
            with store.session() as s:
                assert s.scalar(select(func.count()).select_from(Case)) == 0
    return len(pings)


def test_a_postgresql_connection_is_pinged_only_after_sitting_idle(pg_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker checks a connection out for every batch: no ping round trip when it was checked in a moment
    ago; one when it sat idle `PING_IDLE_S` or longer."""
    assert _pings_over_three_batches(pg_url, 60.0, monkeypatch) == 0
    # each checkout of a connection open_store had already used and checked in
    assert _pings_over_three_batches(pg_url, 0.0, monkeypatch) == 3


def test_a_postgresql_connection_that_died_while_idle_is_replaced_without_an_error(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends a pooled connection (a restart, an idle timeout): the next checkout after `PING_IDLE_S`
    pings it, the pool drops it and hands out a new one; the caller never sees the error."""
    monkeypatch.setattr(store_module, "PING_IDLE_S", 0.0)
    with open_store(pg_url) as store:
        with store.session() as s:
            pid = s.scalar(text("SELECT pg_backend_pid()"))
        with store.engine.connect() as other:  # a second pooled connection does the killing
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            other.commit()
        assert wait_until(lambda: _backend_gone(store, pid), 10)
        with store.session() as s:
            assert s.scalar(text("SELECT pg_backend_pid()")) != pid


def _backend_gone(store: Any, pid: int) -> bool:
    with store.engine.connect() as conn:
        return not conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})
