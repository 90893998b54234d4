from __future__ import annotations

import time
from pathlib import Path

from gridwatch.wire.fake_transport import FakeTransport
from gridwatch.wire.outbox import Outbox
from gridwatch.wire.publisher import Publisher


def wait_until(cond, timeout: float = 3.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return bool(cond())


def test_outbox_survives_reopen_and_deletes_only_acked(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    ids = [box.put("incident", "t/a", f"m{i}".encode()) for i in range(3)]
    box.ack(ids[1])
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert [i.payload for i in again.pending()] == [b"m0", b"m2"]
    assert [i.payload for i in again.pending(exclude={ids[0]})] == [b"m2"]


def test_outbox_bound_drops_evidence_before_incidents(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_rows=100)
    for i in range(60):
        box.put("incident", "t", f"i{i}".encode())
        box.put("evidence", "t", f"e{i}".encode())
    kinds = [i.kind for i in box.pending(1000)]
    assert len(kinds) == 100
    assert kinds.count("incident") == 60
    assert box.dropped == 20


def test_publisher_deletes_on_ack_only(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    transport = FakeTransport(auto_ack=False)
    now = [0.0]
    pub = Publisher(box, transport, clock=lambda: now[0])
    transport.start(pub)
    for i in range(5):
        box.put("incident", "t", f"m{i}".encode())
    assert pub.send_pending() == 5
    assert len(box) == 5
    transport.ack_all(0x80)  # a PUBACK with a failure reason code: keep the rows
    assert len(box) == 5
    assert pub.send_pending() == 0  # backing off
    now[0] = 1.0
    assert pub.send_pending() == 5  # sent again
    transport.ack_all()
    assert len(box) == 0
    box.close()


def test_publisher_replays_in_flight_rows_after_reconnect(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    transport = FakeTransport(auto_ack=False)
    pub = Publisher(box, transport).start()
    box.put("incident", "t", b"one")
    pub.notify()
    assert wait_until(lambda: len(transport.sent) == 1)
    transport.set_connected(False)  # the PUBACK never arrives
    transport.unacked.clear()
    box.put("incident", "t", b"two")
    pub.notify()
    time.sleep(0.1)
    assert len(transport.sent) == 1  # nothing sent while down
    transport.auto_ack = True
    transport.set_connected(True)
    assert wait_until(lambda: len(box) == 0)
    assert [p for _, p, _ in transport.sent] == [b"one", b"one", b"two"]
    pub.stop()


def test_publisher_keeps_order_oldest_first(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    for i in range(50):
        box.put("incident", "t", f"{i:03d}".encode())
    transport = FakeTransport()
    pub = Publisher(box, transport, max_inflight=7).start()
    assert wait_until(lambda: len(box) == 0)
    assert [p for _, p, _ in transport.sent] == [f"{i:03d}".encode() for i in range(50)]
    pub.stop()


def test_a_drop_inside_publish_returns_the_row_to_pending(tmp_path: Path) -> None:
    """Defect 2: the connection drops after the message left but before publish() returned its id.

    The PUBACK for that id can never come; the row must not be booked as in flight on the dead connection but
    sent again once the broker is back, so `drain()` empties the outbox.
    """
    box = Outbox(tmp_path / "o.db")
    transport = FakeTransport(disconnect_during_publish=1)
    pub = Publisher(box, transport)
    transport.start(pub)
    box.put("incident", "t", b"one")
    pub.send_pending()  # the sender's step, run here so the interleaving is exactly the one described
    assert (len(transport.sent), transport.connected, len(box)) == (1, False, 1)
    transport.set_connected(True)
    pub.send_pending()
    assert len(box) == 0, "the row was stuck as 'in flight' on the dead connection"
    assert [p for _, p, _ in transport.sent] == [b"one", b"one"]  # at-least-once: sent twice, not lost
    box.close()


def test_a_late_ack_from_an_old_connection_settles_nothing(tmp_path: Path) -> None:
    """A PUBACK of the previous connection that arrives after the drop must not delete a row sent later on a
    new connection under the same (restarted) message id."""
    box = Outbox(tmp_path / "o.db")
    transport = FakeTransport(auto_ack=False, restart_mids=True)
    pub = Publisher(box, transport)
    transport.start(pub)
    status_mid = transport.publish("status", b"online", {})  # a message sent outside the outbox, id 1
    transport.unacked.clear()
    transport.set_connected(False)
    assert status_mid is not None
    transport.ack(status_mid)  # its PUBACK shows up late, after the drop was reported
    transport.set_connected(True)
    box.put("incident", "t", b"one")
    pub.send_pending()  # sent on the new connection, and its message id is 1 again
    assert transport.unacked == [1]
    assert len(box) == 1, "an acknowledgement of another message deleted the row"
    transport.ack_all()
    assert len(box) == 0
    box.close()


def test_drain_completes_when_every_publish_drops_once(tmp_path: Path) -> None:
    """The same interleaving through the publisher's own thread: each message's first publish drops."""
    box = Outbox(tmp_path / "o.db")
    transport = FakeTransport(disconnect_during_publish=3)
    pub = Publisher(box, transport).start()
    for i in range(3):
        box.put("incident", "t", f"m{i}".encode())
    pub.notify()
    assert wait_until(lambda: not transport.connected)
    while transport.disconnect_during_publish > 0 or not transport.connected:
        assert wait_until(lambda: not transport.connected)
        transport.set_connected(True)
        wait_until(lambda: not transport.connected or len(box) == 0, 0.5)
    assert pub.drain(3.0), f"{len(box)} row(s) never resent"
    pub.stop()
