"""Case assignments against a real Mosquitto: at least once, none lost (defect 3).

The assignment is committed with its case into the dispatch outbox and stamped acknowledged only on the broker's
PUBACK (kept a while to be sent again after a reconnect: `central.dispatch`), so
a broker that is down when the case is created, or a central that dies between the commit and the publish,
delays it but does not lose it. The app subscribes with a persistent session on a broker with persistence, so
it is sent whatever reached the broker while either side was reconnecting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

import gridwatch.central.handler as handler_module
from gridwatch.app.broker import MosquittoBroker
from gridwatch.central.roster import Roster
from gridwatch.central.service import CentralService
from gridwatch.central.store import Case, DispatchRow, Store, open_store
from gridwatch.central.transport import MqttSession
from gridwatch.wire.mqtt import BrokerURL
from gridwatch.wire.topics import incident_topic
from tests.central.factories import GRID_A, make_event, payload
from tests.central.mqtt_helpers import Listener, connected, persistent, publish

pytestmark = pytest.mark.e2e

PREFIX = "gridwatch/v1"
INCIDENT_TOPIC = incident_topic(PREFIX, "site-1", "gw-1", "cam-1")
RECONNECT_S = 40  # paho backs off 1 s .. 30 s between attempts


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker(persistence=True) as running:
        yield running


def make_service(broker: MosquittoBroker, tmp_path: Path, **kw: object) -> CentralService:
    options: dict[str, object] = {
        "prefix": PREFIX,
        "client_id": "central-dispatch-test",
        "roster": Roster(default_cleaner="desk", cells={GRID_A: "cleaner-a"}),
        **kw,
    }
    return CentralService(broker.url, f"sqlite:///{tmp_path / 'cases.db'}", **options)  # type: ignore[arg-type]


def assignment_ids(store: Store) -> list[str]:
    """The assignments the broker has not acknowledged yet."""
    with store.session() as session:
        return list(session.scalars(select(DispatchRow.assignment_id).where(DispatchRow.acked_at.is_(None))))


def received(listener: Listener) -> list[dict[str, object]]:
    return [json.loads(body) for _, body in listener.messages]


def test_an_assignment_made_while_the_broker_is_down_arrives_after_it_returns(
    broker: MosquittoBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_ingest = handler_module.ingest_incident_batch
    stopped: list[bool] = []

    def broker_goes_down_first(*args: object, **kw: object) -> object:
        if not stopped:
            stopped.append(True)
            broker.stop()  # the message is in central's hands; the broker goes away before the case exists
        return real_ingest(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(handler_module, "ingest_incident_batch", broker_goes_down_first)
    with persistent(broker.url, "app-broker-down") as app, make_service(broker, tmp_path) as service:
        listener = Listener(app, f"{PREFIX}/dispatch/#")
        with connected(broker.url, name="pub") as pub:
            publish(pub, INCIDENT_TOPIC, payload(make_event("inc-broker-down")))
        assert service.wait_for(lambda: service.counters.stored == 1, 10), service.snapshot()
        [waiting] = assignment_ids(service.store)  # committed with the case, not sent
        assert service.counters.dispatched == 0
        broker.start()
        assert service.wait_for(lambda: service.counters.dispatched == 1, RECONNECT_S), service.snapshot()
        deadline = time.monotonic() + 5  # the worker stamps the row within its next idle poll (0.2 s)
        while assignment_ids(service.store) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert assignment_ids(service.store) == []
        assert listener.wait(1, RECONNECT_S), "the assignment never reached the app"
    assert {m["assignment_id"] for m in received(listener)} == {waiting}
    assert received(listener)[0]["incident_id"] == "inc-broker-down"


class DiesBeforeDispatch(MqttSession):
    """A session whose process dies right after the commit: no assignment ever leaves it."""

    def publish(self, topic: str, payload: bytes, properties: dict[str, str], *, retain: bool = False) -> int | None:
        return None


def test_an_assignment_committed_before_central_died_is_sent_after_restart(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    def dying() -> MqttSession:
        return DiesBeforeDispatch(BrokerURL.parse(broker.url), "central-dispatch-test")

    with connected(broker.url, name="app") as app:
        listener = Listener(app, f"{PREFIX}/dispatch/#")
        with make_service(broker, tmp_path, session=dying) as first, connected(broker.url, name="pub") as pub:
            publish(pub, INCIDENT_TOPIC, payload(make_event("inc-died-0001")))
            assert first.wait_for(lambda: first.counters.stored == 1, 10), first.snapshot()
            [waiting] = assignment_ids(first.store)
        assert listener.messages == []
        with make_service(broker, tmp_path) as second:
            assert second.wait_for(lambda: second.counters.dispatched == 1, 10), second.snapshot()
            assert listener.wait(1, 10)
            assert second.counters.stored == 0  # the incident was acknowledged by the first run: not again
    assert [m["assignment_id"] for m in received(listener)] == [waiting]


def test_every_case_reaches_the_app_across_a_broker_restart(broker: MosquittoBroker, tmp_path: Path) -> None:
    """Each case's assignment_id is seen by the subscriber (duplicates allowed, none lost).

    Central holds a plain persistent subscription here: Mosquitto does not queue for a `$share` group with no
    member connected (see the README), and this test is about assignments, not that caveat."""
    with (
        persistent(broker.url, "app-every-case") as app,
        make_service(broker, tmp_path, share_group=None) as service,
    ):
        listener = Listener(app, f"{PREFIX}/dispatch/#")
        for batch in range(2):
            with connected(broker.url, name=f"pub{batch}") as pub:
                for i in range(10):
                    publish(pub, INCIDENT_TOPIC, payload(make_event(f"inc-every-{batch}-{i:02d}")))
            if batch == 0:
                broker.stop()  # assignments of the first batch may be in flight
                assert service.wait_for(lambda: not service.connected, 10)
                broker.start()
                assert service.wait_for(lambda: service.connected, RECONNECT_S)
        assert service.wait_for(lambda: service.counters.stored == 20, 20), service.snapshot()
        assert service.wait_for(lambda: service.counters.dispatched >= 20, RECONNECT_S), service.snapshot()
        assert listener.wait(20, RECONNECT_S)
    with open_store(f"sqlite:///{tmp_path / 'cases.db'}") as store, store.session() as session:  # stopped
        cases = set(session.scalars(select(Case.case_number)))
        assert session.scalar(select(func.count()).select_from(DispatchRow).where(DispatchRow.acked_at.is_(None))) == 0
    ids_per_case: dict[str, set[object]] = {}
    for message in received(listener):
        ids_per_case.setdefault(str(message["case_number"]), set()).add(message["assignment_id"])
    assert set(ids_per_case) == cases and len(cases) == 20
    assert all(len(ids) == 1 for ids in ids_per_case.values())  # a redelivery repeats the same assignment_id
