"""Publisher bookkeeping under every awkward interleaving (issue 8, hole 3), driven step by step.

No thread and no sleep: each test calls the sender's step (`Publisher.send_pending`) itself and makes the fake
transport (or the outbox) do the awkward thing at the exact moment: a PUBACK inside publish(), a drop during the
fsync of `mark_attempt`, paho's message ids wrapping at 65,535 while the broker is frozen, a refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from gridwatch.wire.fake_transport import MID_WRAP, FakeTransport
from gridwatch.wire.outbox import Outbox
from gridwatch.wire.publisher import Publisher

NOT_AUTHORIZED, QUOTA_EXCEEDED = 0x87, 0x97


class HookedOutbox(Outbox):
    """An outbox whose `mark_attempt` (an fsync on a real gateway) runs `hook` first: the moment to drop."""

    hook: Callable[[], None] | None = None

    def mark_attempt(self, item_id: int) -> None:
        if self.hook is not None:
            self.hook()
        super().mark_attempt(item_id)


def setup(tmp_path: Path, *, auto_ack: bool = False, rows: int = 0,
          clock: Callable[[], float] | None = None) -> tuple[HookedOutbox, FakeTransport, Publisher]:
    box = HookedOutbox(tmp_path / "o.db")
    transport = FakeTransport(auto_ack=auto_ack)
    pub = Publisher(box, transport, clock=clock) if clock else Publisher(box, transport)
    transport.start(pub)
    for i in range(rows):
        box.put("incident", "t/incident", f"row{i}".encode())
    return box, transport, pub


def heartbeat(transport: FakeTransport) -> int:
    """A status message published outside the outbox, as the edge's heartbeat is."""
    mid = transport.publish("t/status", b"online", {}, retain=True)
    assert mid is not None
    return mid


# --- early acks ------------------------------------------------------------------------------------------------
def test_acks_of_messages_outside_the_outbox_are_not_kept(tmp_path: Path) -> None:
    _, transport, pub = setup(tmp_path, auto_ack=True)
    for _ in range(500):
        heartbeat(transport)
    assert pub._early == {}
    assert pub.stats.stray_acks == 500


def test_an_ack_inside_publish_settles_its_row_and_is_not_kept(tmp_path: Path) -> None:
    box, _transport, pub = setup(tmp_path, auto_ack=True, rows=3)
    assert pub.send_pending() == 3
    assert len(box) == 0 and pub.stats.acked == 3
    assert pub._early == {} and pub._inflight == {}


def test_mid_wrap_while_the_broker_is_frozen_acks_no_row(tmp_path: Path) -> None:
    """The reproduction: heartbeats acked early in a connection, then the broker freezes (SIGSTOP: nothing is
    acknowledged, the TCP connection stays up) while paho's ids wrap; rows then get the heartbeats' old ids."""
    box, transport, pub = setup(tmp_path, auto_ack=True, rows=10)
    for _ in range(10):
        heartbeat(transport)  # ids 1..10, acknowledged while no row was being sent
    transport.auto_ack = False  # frozen
    while transport.mids[-1] != MID_WRAP:
        heartbeat(transport)  # never acknowledged
    transport.unacked.clear()
    assert pub.send_pending() == 10
    assert transport.mids[-10:] == list(range(1, 11)), "the rows reuse the heartbeats' ids"
    assert len(box) == 10, "a stale acknowledgement of a heartbeat deleted a row the frozen broker never took"
    transport.ack_all()  # the broker thaws
    assert len(box) == 0


def test_an_ack_for_another_message_during_a_send_is_forgotten_after_it(tmp_path: Path) -> None:
    """A heartbeat's PUBACK that lands while a row is between publish() and its booking is kept for that send
    only, then dropped: a later row that reuses the heartbeat's id is not acked by it."""
    box, transport, pub = setup(tmp_path, rows=2)
    status = heartbeat(transport)
    transport.unacked.clear()
    transport.during_publish = lambda _mid: transport.ack(status)  # lands during the first row's send
    pub.max_inflight = 1
    assert pub.send_pending() == 1
    transport.during_publish = None
    assert pub._early == {}, "the heartbeat's ack outlived the send it arrived during"
    assert len(box) == 2
    transport._mid = status - 1  # the ids wrap round to the heartbeat's id for the second row
    pub.max_inflight = 2
    assert pub.send_pending() == 1
    assert transport.mids[-1] == status
    assert len(box) == 2
    transport.ack_all()
    assert len(box) == 0


def test_an_ack_that_arrives_during_mark_attempt_settles_the_row(tmp_path: Path) -> None:
    box, transport, pub = setup(tmp_path, rows=1)
    box.hook = lambda: transport.ack_all()
    assert pub.send_pending() == 1
    assert len(box) == 0 and pub.stats.acked == 1


# --- drops -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reconnect_inside", [False, True], ids=["drop", "drop-and-reconnect"])
def test_a_drop_during_the_fsync_of_mark_attempt_resends_the_row(tmp_path: Path, reconnect_inside: bool) -> None:
    box, transport, pub = setup(tmp_path, rows=1)

    def drop() -> None:
        box.hook = None
        transport.unacked.clear()  # that connection's PUBACK never comes
        transport.set_connected(False)
        if reconnect_inside:
            transport.set_connected(True)

    box.hook = drop
    assert pub.send_pending() == 1
    assert pub._inflight == {} and len(box) == 1, "the row is stranded as in flight on a dead connection"
    if not reconnect_inside:
        assert pub.send_pending() == 0  # nothing goes out while down
        transport.set_connected(True)
    assert pub.send_pending() == 1, "the row was not sent again after the reconnect"
    transport.ack_all()
    assert len(box) == 0
    assert [p for _, p, _ in transport.sent] == [b"row0", b"row0"]


def test_an_ack_during_mark_attempt_then_a_drop_loses_nothing(tmp_path: Path) -> None:
    box, transport, pub = setup(tmp_path, rows=2)

    def ack_then_drop() -> None:
        box.hook = None
        transport.ack(transport.unacked.pop(0))  # the first row is acknowledged ...
        transport.set_connected(False)  # ... and the connection drops during its fsync
        transport.set_connected(True)

    box.hook = ack_then_drop
    assert pub.send_pending() == 2  # the second row goes out on the new connection
    assert len(box) == 1
    transport.ack_all()
    assert len(box) == 0


def test_a_late_ack_after_reconnect_settles_nothing(tmp_path: Path) -> None:
    box, transport, pub = setup(tmp_path, rows=1)
    transport.restart_mids = True
    assert pub.send_pending() == 1
    old = transport.unacked.pop()
    transport.set_connected(False)
    transport.set_connected(True)
    assert pub.send_pending() == 1  # the same row again, under the same (restarted) id
    transport.unacked.clear()
    transport.set_connected(False)
    transport.ack(old)  # the first connection's PUBACK, reported after the second dropped
    assert len(box) == 1


# --- refusals --------------------------------------------------------------------------------------------------
def test_a_refused_row_backs_off_exponentially_and_is_logged(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    box, transport, pub = setup(tmp_path, rows=1, clock=lambda: now[0])
    pub.backoff_s = (1.0, 8.0)
    caplog.set_level(logging.WARNING, logger="gridwatch.wire.publisher")
    waits: list[float] = []
    for _ in range(6):
        assert pub.send_pending() == 1
        transport.ack_all(NOT_AUTHORIZED)
        start = now[0]
        while pub.send_pending() == 0:  # no hot loop: nothing goes out until the backoff has passed
            now[0] += 0.25
            assert now[0] - start < 60, "the refused row was never retried"
        waits.append(now[0] - start)
        transport.unacked.clear()
        transport.set_connected(False)
        transport.set_connected(True)
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert len(box) == 1 and pub.stats.refused == 6
    assert "Not authorized (0x87)" in caplog.text and "refusal 6" in caplog.text
    transport.set_connected(False)
    transport.set_connected(True)
    assert pub.send_pending() == 1
    transport.ack_all()
    assert len(box) == 0 and pub._refused == {}


def test_a_refused_row_does_not_hold_up_the_others(tmp_path: Path) -> None:
    now = [0.0]
    box, transport, pub = setup(tmp_path, rows=1, clock=lambda: now[0])
    assert pub.send_pending() == 1
    transport.ack_all(QUOTA_EXCEEDED)
    for i in range(3):
        box.put("incident", "t/incident", f"later{i}".encode())
    assert pub.send_pending() == 3
    transport.ack_all()
    assert [i.payload for i in box.pending()] == [b"row0"]


def test_a_refusal_inside_publish_backs_off_too(tmp_path: Path) -> None:
    now = [0.0]
    box, transport, pub = setup(tmp_path, rows=1, clock=lambda: now[0])
    transport.during_publish = lambda mid: transport.ack(mid, NOT_AUTHORIZED)
    assert pub.send_pending() == 1
    assert pub.send_pending() == 0
    assert len(box) == 1 and pub.stats.refused == 1 and pub._inflight == {}


def test_no_matching_subscribers_is_retried_for_retry_unmatched_s_then_settles(tmp_path: Path) -> None:
    """Central's dispatch: a PUBACK 0x10 (no subscription matched: nobody gets the message) keeps the row and backs
    it off, for `retry_unmatched_s` after the row's first such PUBACK; then one settles it. Without the option
    (the edge) 0x10 settles at once, as any success does."""
    now = [100.0]
    box = Outbox(tmp_path / "o.db")
    transport = FakeTransport(auto_ack=False)
    pub = Publisher(box, transport, clock=lambda: now[0], backoff_s=(1.0, 8.0), retry_unmatched_s=10.0)
    transport.start(pub)
    box.put("assignment", "gridwatch/v1/dispatch/c1", b"{}")
    assert pub.send_pending() == 1
    transport.ack_all(0x10)
    assert len(box) == 1 and pub.stats.unmatched == 1 and pub.stats.acked == 0
    assert pub.send_pending() == 0  # backing off
    for _ in range(4):  # 1, 2, 4, 8 s later: still within 10 s of the first 0x10
        now[0] += 8.0
        assert pub.send_pending() == 1
        transport.ack_all(0x10)
        if len(box) == 0:
            break
    assert len(box) == 0 and pub.stats.acked == 1 and now[0] - 100.0 >= 10.0
    plain = Publisher(Outbox(tmp_path / "p.db"), FakeTransport(auto_ack=False))
    plain.transport.start(plain)
    plain.outbox.put("incident", "t", b"{}")
    assert plain.send_pending() == 1
    plain.transport.ack_all(0x10)  # type: ignore[attr-defined]
    assert len(plain.outbox) == 0
