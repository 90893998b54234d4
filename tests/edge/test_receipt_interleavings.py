"""End-to-end receipts at the edge (`confirm="receipt"`), driven step by step with the fake transport.

A PUBACK no longer deletes a row: the broker may crash before saving what it acknowledged (issue 8). The row
stays `published` until central's receipt names it, and goes out again on a timeout and after every reconnect.
No thread and no sleep: each test calls the sender's step itself, moves a fake clock, and delivers receipts,
PUBACKs and drops in the order under test.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from gridwatch.wire.fake_transport import FakeTransport
from gridwatch.wire.outbox import Outbox, OutboxItem
from gridwatch.wire.publisher import Publisher
from gridwatch.wire.receipts import ReceiptListener

PREFIX = "gridwatch/v1"
RECEIPTS = f"{PREFIX}/s1/gw1/receipt"
INCIDENTS = f"{PREFIX}/s1/gw1/cam1/incident"
EVIDENCE = f"{PREFIX}/s1/gw1/cam1/evidence"
TIMEOUT = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """Outbox + fake transport + receipt-mode publisher + the gateway's receipt listener."""

    def __init__(self, path: Path, *, auto_ack: bool = False, clock: Clock | None = None) -> None:
        self.path, self.clock = path, clock or Clock()
        self.box = Outbox(path)
        self.transport = FakeTransport(auto_ack=auto_ack)
        self.listener = ReceiptListener(RECEIPTS, self.box)
        self.transport.subscribe(RECEIPTS, self.listener.on_message)
        self.pub = Publisher(self.box, self.transport, confirm="receipt", resend_s=(TIMEOUT, 8 * TIMEOUT),
                             clock=self.clock)  # a later row receipted: resend after 30 s .. 240 s; else 240 s
        self.transport.start(self.pub)

    def put(self, n: int = 1, kind: str = "incident") -> list[str]:
        keys = []
        for _ in range(n):
            key = str(uuid.uuid4())
            if kind == "incident":
                self.box.put("incident", INCIDENTS, json.dumps({"event_id": key}).encode())
            else:
                self.box.put("evidence", EVIDENCE, b"\xff\xd8jpeg", {"event_id": key, "incident_id": "inc-1"})
            keys.append(key)
        return keys

    def receipt(self, incident: list[str] = (), evidence: list[str] = (), topic: str = RECEIPTS) -> None:  # type: ignore[assignment]
        body = {"v": 1, **({"incident": list(incident)} if incident else {}),
                **({"evidence": list(evidence)} if evidence else {})}
        self.transport.deliver(topic, json.dumps(body).encode())

    def keys_left(self) -> list[str | None]:
        with sqlite3.connect(self.path) as db:
            return [r[0] for r in db.execute("SELECT key FROM outbox ORDER BY id")]

    def sent_keys(self) -> list[str]:
        return [json.loads(p)["event_id"] if t == INCIDENTS else props["event_id"]
                for t, p, props in self.transport.sent]


def test_a_puback_keeps_the_row_until_its_receipt(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    (key,) = rig.put()
    assert rig.pub.send_pending() == 1
    assert rig.pub.stats.acked == 1 and rig.keys_left() == [key]  # acknowledged by the broker, still kept
    assert rig.box.counts() == {"pending": 0, "published": 1}
    assert rig.pub.send_pending() == 0  # not sent again before its timeout
    rig.receipt([key])
    assert rig.keys_left() == [] and len(rig.box) == 0
    assert rig.pub.drain(0.1)
    assert (rig.listener.stats.messages, rig.listener.stats.settled, rig.listener.stats.unknown) == (1, 1, 0)


def test_a_row_passed_over_by_later_receipts_is_sent_again_after_the_timeout_then_later_and_later(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    lost, later = rig.put(2)
    rig.pub.send_pending()
    rig.receipt([later])  # central committed the row sent after it: this one was lost on the way
    rig.clock.now += TIMEOUT - 1
    assert rig.pub.send_pending() == 0
    rig.clock.now += 1
    assert rig.pub.send_pending() == 1 and rig.pub.stats.resent == 1  # the first timeout: 30 s
    rig.clock.now += TIMEOUT
    assert rig.pub.send_pending() == 0  # the second wait doubles: 60 s
    rig.clock.now += TIMEOUT
    assert rig.pub.send_pending() == 1
    rig.clock.now += 4 * TIMEOUT
    assert rig.pub.send_pending() == 1  # 120 s
    rig.clock.now += 8 * TIMEOUT  # 240 s, then bounded at resend_s[1] = 240 s instead of doubling on
    assert rig.pub.send_pending() == 1
    rig.clock.now += 8 * TIMEOUT
    assert rig.pub.send_pending() == 1
    assert rig.sent_keys() == [lost, later] + [lost] * 5
    rig.receipt([lost])
    assert len(rig.box) == 0


def test_rows_central_has_not_reached_yet_wait_for_the_long_retry_and_only_the_newest_probes(tmp_path: Path) -> None:
    """Central down, or working through a backlog: no later row is receipted, so copies would only pile up in the
    broker's queue for it. The rows wait for `resend_s[1]` (doubling), then go again; only the newest goes after
    `resend_s[0]` (doubling too), since no later row can ever be receipted to show it was lost."""
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    keys = rig.put(3)
    rig.pub.send_pending()
    for _ in range(int(8 * TIMEOUT) - 1):
        rig.clock.now += 1
        rig.pub.send_pending()
    sent = rig.sent_keys()
    assert sent.count(keys[0]) == sent.count(keys[1]) == 1, sent
    assert sent.count(keys[2]) == 4  # at 0 s and 30 s, 90 s, 210 s after
    rig.clock.now += 1
    assert rig.pub.send_pending() == 2  # the long retry
    rig.clock.now += 8 * TIMEOUT
    before = len(rig.transport.sent)
    rig.pub.send_pending()  # the long retry doubles: only the newest may be due now
    assert keys[0] not in rig.sent_keys()[before:]
    rig.clock.now += 8 * TIMEOUT
    rig.pub.send_pending()
    assert rig.sent_keys().count(keys[0]) == rig.sent_keys().count(keys[1]) == 3
    rig.receipt(keys[:1])  # central catches up with the oldest: the others are still ahead of it
    rig.clock.now += TIMEOUT * 4
    before = len(rig.transport.sent)
    rig.pub.send_pending()
    assert keys[1] not in rig.sent_keys()[before:]


def test_after_a_broker_crash_that_lost_central_s_subscription_the_newest_row_s_receipt_brings_the_rest(
    tmp_path: Path,
) -> None:
    """The broker came back without central's session and took the gateway's sends before central subscribed
    again: they went nowhere. Only the newest row goes again after `resend_s[0]`; its receipt shows central is past
    the older ones, which go at once."""
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    keys = rig.put(5)
    rig.pub.send_pending()  # all acknowledged by the broker, none reached central
    rig.clock.now += TIMEOUT
    assert rig.pub.send_pending() == 1 and rig.sent_keys()[-1] == keys[-1]
    rig.receipt(keys[-1:])
    assert rig.pub.send_pending() == 4 and rig.sent_keys()[-4:] == keys[:4]
    rig.receipt(keys[:4])
    assert len(rig.box) == 0


def test_a_receipt_before_the_puback_deletes_the_row_and_the_late_puback_changes_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "o.db")
    (key,) = rig.put()
    rig.pub.send_pending()
    rig.receipt([key])  # central committed it and answered before the broker's PUBACK reached us
    assert rig.keys_left() == []
    rig.transport.ack_all()
    assert rig.keys_left() == [] and rig.pub.stats.acked == 1
    rig.clock.now += 100 * TIMEOUT  # long past every resend
    assert rig.pub.send_pending() == 0 and rig.sent_keys() == [key]


def test_a_receipt_during_publish_before_the_row_is_booked(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    (key,) = rig.put()
    rig.transport.during_publish = lambda _mid: rig.receipt([key])  # and then the PUBACK, inside publish()
    rig.pub.send_pending()
    assert rig.keys_left() == [] and rig.pub._inflight == {}  # nothing resurrected by the PUBACK or mark_attempt
    assert rig.pub.send_pending() == 0


def test_published_rows_go_out_again_after_a_reconnect_and_the_receipt_then_settles_them(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    keys = rig.put(3)
    rig.pub.send_pending()
    assert rig.box.counts()["published"] == 3
    rig.transport.set_connected(False)  # the broker crashed: it may have lost all three unsaved
    rig.transport.set_connected(True)
    assert rig.pub.stats.republished == 3 and rig.box.counts() == {"pending": 3, "published": 0}
    assert rig.pub.send_pending() == 3  # at once, not after the timeout
    rig.receipt(keys[:2])
    assert rig.keys_left() == keys[2:]
    rig.transport.set_connected(False)
    rig.transport.set_connected(True)
    assert rig.pub.send_pending() == 1
    rig.receipt([keys[2]])
    assert len(rig.box) == 0
    assert rig.sent_keys() == keys + keys + [keys[2]]


def test_a_receipt_that_arrives_after_the_reconnect_settles_the_resent_row(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "o.db")
    (key,) = rig.put()
    rig.pub.send_pending()
    rig.transport.set_connected(False)  # no PUBACK: the drop came first
    rig.transport.set_connected(True)
    rig.pub.send_pending()  # the resend
    rig.receipt([key])  # central's receipt of the first copy, delivered on the new connection
    assert rig.keys_left() == []
    rig.transport.ack_all()  # PUBACKs of both copies: the old one is stray, the new one finds no row
    assert rig.keys_left() == [] and rig.pub.stats.stray_acks == 1
    assert rig.pub.send_pending() == 0


def test_a_duplicate_receipt_and_a_receipt_for_unknown_ids_are_ignored_and_counted(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    keys = rig.put(2)
    rig.pub.send_pending()
    rig.receipt([keys[0]])
    rig.receipt([keys[0]])  # QoS 1 may deliver it twice
    rig.receipt([str(uuid.uuid4()), str(uuid.uuid4())])  # ids this gateway never held
    assert rig.keys_left() == [keys[1]]
    stats = rig.listener.stats
    assert (stats.messages, stats.settled, stats.unknown, stats.refused) == (3, 1, 3, 0)


def test_a_receipt_names_the_kind_so_an_incident_s_receipt_does_not_settle_its_evidence(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    (key,) = rig.put()
    rig.box.put("evidence", EVIDENCE, b"\xff\xd8jpeg", {"event_id": key, "incident_id": "inc-1"})
    rig.pub.send_pending()
    rig.receipt([key])
    assert rig.keys_left() == [key]  # the snapshot is not committed yet
    rig.receipt(evidence=[key])
    assert rig.keys_left() == []


@pytest.mark.parametrize("payload", [b"not json", b'{"v": 1, "incident": ["*"]}', b'{"v": 1, "all": true}',
                                     b"x" * 40_000])
def test_a_malformed_receipt_deletes_nothing_and_is_counted(tmp_path: Path, payload: bytes) -> None:
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    keys = rig.put(2)
    rig.pub.send_pending()
    rig.transport.deliver(RECEIPTS, payload)
    assert rig.keys_left() == keys
    assert (rig.listener.stats.refused, rig.listener.stats.messages) == (1, 0)
    assert rig.listener.stats.last_error


def test_a_receipt_on_another_gateway_s_topic_is_refused(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    (key,) = rig.put()
    rig.pub.send_pending()
    rig.listener.on_message(f"{PREFIX}/s1/gw2/receipt", json.dumps({"v": 1, "incident": [key]}).encode())
    rig.transport.deliver(f"{PREFIX}/s1/gw2/receipt", b"{}")  # not subscribed: the transport drops it
    assert rig.keys_left() == [key] and rig.listener.stats.refused == 1


def test_a_crash_between_publish_and_receipt_sends_the_row_again_on_the_next_start(tmp_path: Path) -> None:
    first = Rig(tmp_path / "o.db", auto_ack=True)
    keys = first.put(2)
    first.pub.send_pending()
    assert first.box.counts() == {"pending": 0, "published": 2}
    first.box.close()  # the gateway dies here: no receipt came; nothing of the publisher survives
    second = Rig(tmp_path / "o.db", auto_ack=True)  # the next start: connecting makes every published row due
    assert second.pub.stats.republished == 2
    assert second.pub.send_pending() == 2 and second.sent_keys() == keys
    second.receipt(keys)
    assert len(second.box) == 0


def test_a_refused_row_is_backed_off_not_marked_published(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "o.db")
    (key,) = rig.put()
    rig.pub.send_pending()
    rig.transport.ack_all(0x87)
    assert rig.box.counts() == {"pending": 1, "published": 0} and rig.pub.stats.refused == 1
    assert rig.pub.send_pending() == 0  # backing off (1 s)
    rig.clock.now += 1
    assert rig.pub.send_pending() == 1
    rig.transport.ack_all()
    assert rig.box.counts() == {"pending": 0, "published": 1} and rig.keys_left() == [key]


def test_puback_mode_is_the_explicit_fallback_that_deletes_on_the_puback(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put("incident", INCIDENTS, json.dumps({"event_id": str(uuid.uuid4())}).encode())
    transport = FakeTransport()
    pub = Publisher(box, transport)  # confirm="puback", as central's dispatch outbox uses it
    transport.start(pub)
    pub.send_pending()
    assert len(box) == 0


def test_receipt_mode_needs_an_outbox_that_keeps_published_rows(tmp_path: Path) -> None:
    class PubackOnly:
        def pending(self, limit: int = 100, exclude: set[int] | None = None) -> list[OutboxItem]:
            return []

        def mark_attempt(self, item_id: int) -> None: ...

        def ack(self, item_id: int) -> None: ...

        def __len__(self) -> int:
            return 0

    with pytest.raises(TypeError, match="keeps published rows"):
        Publisher(PubackOnly(), FakeTransport(), confirm="receipt")
    with pytest.raises(ValueError, match="confirm"):
        Publisher(Outbox(tmp_path / "o.db"), FakeTransport(), confirm="maybe")  # type: ignore[arg-type]


def test_an_outbox_file_from_before_receipts_is_migrated_with_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    key, ev_key = str(uuid.uuid4()), str(uuid.uuid4())
    with sqlite3.connect(path) as db:
        db.executescript("""CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL,
            kind TEXT NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL, props TEXT NOT NULL DEFAULT '{}',
            attempts INTEGER NOT NULL DEFAULT 0);""")
        db.execute("INSERT INTO outbox(created, kind, topic, payload, props) VALUES (1, 'incident', ?, ?, '{}')",
                   (INCIDENTS, json.dumps({"event_id": key}).encode()))
        db.execute("INSERT INTO outbox(created, kind, topic, payload, props) VALUES (2, 'evidence', ?, ?, ?)",
                   (EVIDENCE, b"\xff\xd8", json.dumps({"event_id": ev_key})))
        db.execute("INSERT INTO outbox(created, kind, topic, payload, props) VALUES (3, 'incident', ?, ?, '{}')",
                   (INCIDENTS, b"not json"))
    box = Outbox(path)
    assert [i.key for i in box.pending()] == [key, ev_key, None]
    assert box.settle("incident", [key]) == 1 and box.settle("evidence", [ev_key]) == 1
    assert len(box) == 1
    box.close()
    assert len(Outbox(path)) == 1  # opening again migrates nothing twice


def test_due_rows_are_found_through_indexes_not_by_scanning_the_rows_that_wait(tmp_path: Path) -> None:
    """A gateway whose central is down holds many published rows; the sender looks for due rows after every
    PUBACK, so each of its queries must search an index, never scan the table."""
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    rig.put(50)
    rig.pub.send_pending()
    statements: list[str] = []
    rig.box._db.set_trace_callback(statements.append)
    rig.box.pending(10, now=rig.clock.now)
    rig.box._db.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 4
    for sql in selects:
        plan = [row[-1] for row in rig.box._db.execute(f"EXPLAIN QUERY PLAN {sql}")]
        assert not [step for step in plan if step.startswith("SCAN")], (sql, plan)


def test_a_reconnect_resends_only_the_newest_rows_and_their_receipts_expose_the_older_ones_the_broker_lost(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    keys = rig.put(30)
    for _ in range(2):
        rig.pub.send_pending()
    assert rig.box.counts()["published"] == 30
    rig.clock.now += 60  # past every row's first resend time
    rig.transport.set_connected(False)  # the broker crashed: it kept rows 0..19 and lost 20..29, say
    rig.transport.set_connected(True)
    assert rig.pub.stats.republished == 20  # max_inflight: not the whole backlog on every reconnect
    before = len(rig.transport.sent)
    assert rig.pub.send_pending() == 20 and rig.sent_keys()[before:] == keys[10:]
    assert rig.pub.send_pending() == 0  # rows 0..9 wait: central may still have them queued
    rig.receipt(keys[:5] + keys[10:])  # central had 0..4 and the resent 10..29; 5..9 were lost
    assert rig.pub.send_pending() == 5
    assert rig.sent_keys()[-5:] == keys[5:10]
    rig.receipt(keys[5:10])
    assert len(rig.box) == 0


def test_a_busy_broker_that_drops_connections_does_not_get_the_backlog_again_each_time(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "o.db", auto_ack=True)
    rig.put(200)
    while rig.pub.send_pending():
        pass
    for _ in range(5):  # keepalive timeouts of a broker that saves for longer than 1.5 keepalives
        rig.transport.set_connected(False)
        rig.transport.set_connected(True)
        rig.pub.send_pending()
    assert len(rig.transport.sent) == 200 + 5 * 20
