"""CentralService wired to a FakeSession: acknowledgement after the commit, and case assignments that leave
through the dispatch outbox (deleted only on PUBACK, sent again after a drop). The real broker: test_service_e2e."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select

import gridwatch.central.handler as handler_module
from gridwatch.app.poll import wait_until
from gridwatch.central.roster import Roster
from gridwatch.central.service import CentralService
from gridwatch.central.store import Case, DispatchRow, Store
from gridwatch.central.transport import FakeSession, Inbound
from tests.central.factories import GRID_A, make_event, payload

TOPIC = "gridwatch/v1/site-1/gw-1/cam-1/incident"


def count(store: Store, model: type[object]) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def unacked(store: Store) -> int:
    """Assignments the broker has not acknowledged (acknowledged ones stay a while, stamped: `central.dispatch`)."""
    with store.session() as session:
        query = select(func.count()).select_from(DispatchRow).where(DispatchRow.acked_at.is_(None))
        return int(session.scalar(query) or 0)


@dataclass
class RecordingSession(FakeSession):
    """Notes how many cases were committed at the moment each message was acknowledged."""

    cases_at_ack: list[int] = field(default_factory=list)
    store: Callable[[], Store] | None = None

    def ack(self, msg: Inbound) -> None:
        if self.store is not None:
            self.cases_at_ack.append(count(self.store(), Case))
        super().ack(msg)


def dispatched(session: FakeSession) -> list[tuple[str, bytes]]:
    """What the session published on dispatch topics (it also carries the gateways' receipts)."""
    return [(t, p) for t, p in session.published if "/dispatch/" in t]




def make_service(tmp_path: Path, session: FakeSession) -> CentralService:
    return CentralService("mqtt://127.0.0.1:1", f"sqlite:///{tmp_path / 'cases.db'}", prefix="gridwatch/v1",
                          roster=Roster(default_cleaner="desk", cells={GRID_A: "cleaner-a"}),
                          session=lambda: session)


def test_subscribes_on_connect_and_acks_after_the_commit(tmp_path: Path) -> None:
    session = RecordingSession()
    with make_service(tmp_path, session) as service:
        session.store = lambda: service.store
        assert session.subscriptions == ["gridwatch/v1/+/+/+/incident",  # plain: the default that loses nothing
                                         "gridwatch/v1/+/+/+/evidence"]
        msg = session.deliver(TOPIC, payload(make_event("inc-unit-0001")))
        assert service.wait_for(lambda: service.counters.stored == 1, 5)
        assert wait_until(lambda: session.acked == [msg.mid])
    assert session.cases_at_ack == [1]


def test_a_message_of_a_dropped_connection_is_not_acked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = FakeSession()
    real_ingest = handler_module.ingest_incident_batch

    def drop_first(*args: object, **kw: object) -> object:
        session.set_connected(False)  # the connection the message came on goes away while it is handled
        session.set_connected(True)
        return real_ingest(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(handler_module, "ingest_incident_batch", drop_first)
    with make_service(tmp_path, session) as service:
        session.deliver(TOPIC, payload(make_event("inc-unit-0002")))
        assert service.wait_for(lambda: service.counters.stored == 1, 5)
    assert session.acked == []  # the broker redelivers it; the event_id makes that a duplicate


def test_an_assignment_is_settled_only_on_its_puback(tmp_path: Path) -> None:
    session = FakeSession(auto_ack=False)
    with make_service(tmp_path, session) as service:
        session.deliver(TOPIC, payload(make_event("inc-unit-0003")))
        assert wait_until(lambda: len(dispatched(session)) == 1)
        assert unacked(service.store) == 1
        assert service.counters.dispatched == 0
        session.ack_all()
        assert service.wait_for(lambda: service.counters.dispatched == 1, 5)
        # stamped by the worker (its next batch, or its idle poll), not on paho's network thread
        assert wait_until(lambda: unacked(service.store) == 0)
        assert count(service.store, DispatchRow) == 1  # kept for a replay after a reconnect
    topic, body = dispatched(session)[0]
    assert topic == "gridwatch/v1/dispatch/cleaner-a"
    assert json.loads(body)["incident_id"] == "inc-unit-0003"


def test_an_assignment_made_while_disconnected_goes_out_after_reconnect(tmp_path: Path) -> None:
    session = FakeSession()
    with make_service(tmp_path, session) as service:
        session.set_connected(False)
        session.deliver(TOPIC, payload(make_event("inc-unit-0004")))  # arrived just before the drop
        assert service.wait_for(lambda: service.counters.stored == 1, 5)
        assert dispatched(session) == [] and unacked(service.store) == 1
        session.set_connected(True)
        assert service.wait_for(lambda: service.counters.dispatched == 1, 5)
        assert wait_until(lambda: unacked(service.store) == 0)
    assert [json.loads(body)["incident_id"] for _, body in dispatched(session)] == ["inc-unit-0004"]


def test_an_acknowledged_assignment_goes_out_again_after_every_reconnect(tmp_path: Path) -> None:
    """The broker acknowledges before it saves: one that crashed may have lost the assignment, so after a
    reconnect central sends it again (the app dedupes by assignment_id), once per reconnect."""
    session = FakeSession()
    with make_service(tmp_path, session) as service:
        session.deliver(TOPIC, payload(make_event("inc-unit-0006")))
        assert service.wait_for(lambda: service.counters.dispatched == 1, 5)
        assert wait_until(lambda: unacked(service.store) == 0)
        for reconnects in (1, 2):
            session.set_connected(False)
            session.set_connected(True)
            assert service.wait_for(lambda n=reconnects: service.counters.dispatched == 1 + n, 5)  # type: ignore[misc]
        time.sleep(1.5)  # the publisher's idle ticks: nothing more goes out without another reconnect
        assert service.counters.dispatched == 3
    bodies = [json.loads(body) for _, body in dispatched(session)]
    assert len(bodies) == 3 and len({b["assignment_id"] for b in bodies}) == 1


def test_assignments_left_at_stop_go_out_on_the_next_start(tmp_path: Path) -> None:
    """Central stopped (or died) after the commit, before the PUBACK: the next start sends the assignment."""
    first = FakeSession(auto_ack=False)
    with make_service(tmp_path, first) as service:
        first.deliver(TOPIC, payload(make_event("inc-unit-0005")))
        assert wait_until(lambda: len(dispatched(first)) == 1)
    second = FakeSession()
    with make_service(tmp_path, second) as service:
        assert service.wait_for(lambda: service.counters.dispatched == 1, 5)
        assert wait_until(lambda: unacked(service.store) == 0)
    assert [body for _, body in dispatched(second)] == [body for _, body in dispatched(first)]


def test_share_group_is_opt_in_and_sites_narrow_the_filters(tmp_path: Path) -> None:
    def topics(**kw: object) -> list[str]:
        return CentralService("mqtt://127.0.0.1:1883", f"sqlite:///{tmp_path / 'c.db'}", **kw).topics()  # type: ignore[arg-type]

    both = ["gridwatch/v1/+/+/+/incident", "gridwatch/v1/+/+/+/evidence"]
    assert topics() == both  # evidence too without a folder: it is receipted, not stored
    assert topics(share_group="central", evidence_dir=tmp_path) == [f"$share/central/{t}" for t in both]
    assert topics(share_group="central", protocol="3.1.1") == both
    assert topics(sites=("north", "east")) == [f"gridwatch/v1/{site}/+/+/{kind}" for site in ("north", "east")
                                               for kind in ("incident", "evidence")]


def test_an_assignment_nobody_is_subscribed_to_stays_and_goes_again(tmp_path: Path) -> None:
    """MQTT 5 PUBACK 0x10 (no matching subscribers: the cleaner app has not subscribed, or a broker crash lost its
    session) settles nothing: the row is backed off (1 s) and sent again until a PUBACK with a subscriber."""
    session = FakeSession(auto_ack=False)
    with make_service(tmp_path, session) as service:
        session.deliver(TOPIC, payload(make_event("inc-unit-0007")))
        assert wait_until(lambda: len(dispatched(session)) == 1)
        session.ack_all(0x10)
        time.sleep(0.3)
        assert service.counters.dispatched == 0 and unacked(service.store) == 1
        assert wait_until(lambda: len(dispatched(session)) == 2, 5)  # after the 1 s backoff
        session.ack_all(0)
        assert service.wait_for(lambda: service.counters.dispatched == 1, 5)
        assert wait_until(lambda: unacked(service.store) == 0)
    bodies = [json.loads(body) for _, body in dispatched(session)]
    assert len({b["assignment_id"] for b in bodies}) == 1
