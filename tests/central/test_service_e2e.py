"""CentralService against a real Mosquitto: one case per incident, duplicates and garbage handled, nothing
published at QoS 1 while central is down is lost (persistent session)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from gridwatch.app.broker import MosquittoBroker
from gridwatch.central.roster import Roster
from gridwatch.central.service import CentralError, CentralService
from gridwatch.central.store import Case, DeadLetter, EventRow, Store, open_store
from gridwatch.wire.mqtt import Protocol
from gridwatch.wire.topics import evidence_topic, incident_topic
from tests.central.factories import GRID_A, JPEG_BYTES, lifecycle, make_event, payload
from tests.central.mqtt_helpers import Listener, connected, evidence_properties, publish

pytestmark = pytest.mark.e2e

PREFIX = "gridwatch/v1"
INCIDENT_TOPIC = incident_topic(PREFIX, "site-1", "gw-1", "cam-1")
EVIDENCE_TOPIC = evidence_topic(PREFIX, "site-1", "gw-1", "cam-1")
PROTOCOLS: list[Protocol] = ["5", "3.1.1"]


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker() as running:
        yield running


def count(store: Store, model: type[object]) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def make_service(
    broker: MosquittoBroker, tmp_path: Path, protocol: Protocol, db_url: str | None = None, **kw: object
) -> CentralService:
    options: dict[str, object] = {
        "prefix": PREFIX,
        "protocol": protocol,
        "client_id": f"central-test-{protocol}",
        "roster": Roster(default_cleaner="desk", cells={GRID_A: "cleaner-a"}),
        **kw,
    }
    return CentralService(broker.url, db_url or f"sqlite:///{tmp_path / 'cases.db'}", **options)  # type: ignore[arg-type]


def evidence_message(protocol: Protocol, incident_id: str, event_id: str) -> tuple[bytes, object]:
    if protocol == "5":
        return JPEG_BYTES, evidence_properties(incident_id, event_id)
    envelope = {
        "incident_id": incident_id,
        "event_id": event_id,
        "content_type": "image/jpeg",
        "sha256": hashlib.sha256(JPEG_BYTES).hexdigest(),
        "data_b64": base64.b64encode(JPEG_BYTES).decode(),
    }
    return json.dumps(envelope).encode(), None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_lifecycle_duplicate_and_garbage_make_one_case_and_one_dead_letter(
    broker: MosquittoBroker, tmp_path: Path, protocol: Protocol, db_url: str
) -> None:
    """Runs on SQLite and on PostgreSQL (the `db_url` fixture)."""
    events = lifecycle("inc-e2e-0001", updates=1)
    garbage = b'{"event_id": "garbage\n'
    service = make_service(
        broker,
        tmp_path,
        protocol,
        db_url,
        evidence_dir=tmp_path / "evidence",
        events_log=tmp_path / "events.jsonl",
    )
    with (
        service,
        connected(broker.url, protocol, "pub") as pub,
        connected(broker.url, protocol, "app") as app,
    ):
        dispatched = Listener(app, f"{PREFIX}/dispatch/#")
        for event in events:
            publish(pub, INCIDENT_TOPIC, payload(event))
        publish(pub, INCIDENT_TOPIC, payload(events[1]))  # a replay after a lost PUBACK
        publish(pub, INCIDENT_TOPIC, garbage)
        data, props = evidence_message(protocol, "inc-e2e-0001", str(events[0].event_id))
        publish(pub, EVIDENCE_TOPIC, data, props)  # type: ignore[arg-type]

        handled = ("stored", "duplicates", "dead_letters", "evidence")
        assert service.wait_for(lambda: sum(service.snapshot()[k] for k in handled) == 6, 15), service.snapshot()
        assert dispatched.wait(1, timeout=5), (service.snapshot(), dispatched.messages)
        assert service.wait_for(lambda: service.counters.dispatched == 1, 5), service.snapshot()  # its PUBACK
        counters = service.snapshot()

    assert counters == {
        "received": 6,
        "stored": 3,
        "duplicates": 1,
        "dead_letters": 1,
        "evidence": 1,
        "evidence_discarded": 0,
        "dispatched": 1,
        "errors": 0,
    }
    with open_store(db_url) as store:
        assert (count(store, Case), count(store, EventRow), count(store, DeadLetter)) == (1, 3, 1)
        with store.session() as session:
            case = session.scalars(select(Case)).one()
            letter = session.scalars(select(DeadLetter)).one()
    assert (case.status, case.cleaner, case.last_seq) == ("resolved_on_camera", "cleaner-a", 2)
    assert letter.payload == garbage
    assert case.snapshot_path is not None and Path(case.snapshot_path).read_bytes() == JPEG_BYTES
    topic, body = dispatched.messages[0]
    assert topic == f"{PREFIX}/dispatch/cleaner-a"
    assert json.loads(body)["case_number"] == case.case_number
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    assert len(lines) == 5
    assert lines[0] == payload(events[0])
    assert lines[4] == garbage.replace(b"\n", b" ")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_messages_published_while_central_is_down_arrive_after_restart(
    broker: MosquittoBroker, tmp_path: Path, protocol: Protocol
) -> None:
    make_service(broker, tmp_path, protocol).start().stop()  # creates the persistent session
    events = [make_event(f"inc-offline-{i:02d}") for i in range(3)]
    with connected(broker.url, protocol, "pub") as pub:
        for event in events:
            publish(pub, INCIDENT_TOPIC, payload(event))

    with make_service(broker, tmp_path, protocol) as service:
        assert service.wait_for(lambda: service.counters.stored == 3, 10), service.snapshot()
        with service.store.session() as session:
            incidents = set(session.scalars(select(Case.incident_id)))
    assert incidents == {e.incident_id for e in events}


def test_message_is_acked_only_after_commit(
    broker: MosquittoBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is down while a message arrives: it stays un-acked and is redelivered after a restart."""
    import gridwatch.central.handler as service_module

    real_ingest = service_module.ingest_incident_batch

    def database_down(*_a: object, **_kw: object) -> object:
        raise OperationalError("INSERT ...", {}, ConnectionError("database is down"))

    make_service(broker, tmp_path, "5").start().stop()
    monkeypatch.setattr(service_module, "ingest_incident_batch", database_down)
    with make_service(broker, tmp_path, "5") as service, connected(broker.url) as pub:
        publish(pub, INCIDENT_TOPIC, payload(make_event("inc-redeliver")))
        assert service.wait_for(lambda: service.counters.received == 1, 5)
    assert service.snapshot()["stored"] == 0

    monkeypatch.setattr(service_module, "ingest_incident_batch", real_ingest)
    with make_service(broker, tmp_path, "5") as service:
        assert service.wait_for(lambda: service.counters.stored == 1, 10), service.snapshot()
        with service.store.session() as session:
            assert session.scalars(select(Case.incident_id)).all() == ["inc-redeliver"]


def test_handler_exception_is_dead_lettered_and_the_loop_goes_on(
    broker: MosquittoBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gridwatch.central.handler as service_module

    real_ingest = service_module.ingest_incident

    def flaky(session: object, topic: str, data: bytes, *args: object, **kw: object) -> object:
        if b"inc-poison" in data:
            raise RuntimeError("bug in a handler")
        return real_ingest(session, topic, data, *args, **kw)  # type: ignore[arg-type]

    real_batch = service_module.ingest_incident_batch

    def flaky_batch(session: object, messages: list[tuple[str, bytes]], *args: object, **kw: object) -> object:
        if any(b"inc-poison" in data for _topic, data in messages):
            raise RuntimeError("bug in a handler")  # the run goes again one savepoint per message
        return real_batch(session, messages, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(service_module, "ingest_incident", flaky)
    monkeypatch.setattr(service_module, "ingest_incident_batch", flaky_batch)
    with make_service(broker, tmp_path, "5") as service, connected(broker.url) as pub:
        publish(pub, INCIDENT_TOPIC, payload(make_event("inc-poison-01")))
        publish(pub, INCIDENT_TOPIC, payload(make_event("inc-healthy-1")))
        assert service.wait_for(lambda: service.counters.stored == 1, 10), service.snapshot()
        counters = service.snapshot()
        with service.store.session() as session:
            letter = session.scalars(select(DeadLetter)).one()
    assert (counters["dead_letters"], counters["errors"]) == (1, 1)
    assert "bug in a handler" in letter.error


def test_service_reconnects_after_a_broker_restart(broker: MosquittoBroker, tmp_path: Path) -> None:
    with make_service(broker, tmp_path, "5") as service:
        broker.kill()
        assert service.wait_for(lambda: not service.connected, 5)
        broker.start()
        assert service.wait_for(lambda: service.connected, 35)
        with connected(broker.url) as pub:
            publish(pub, INCIDENT_TOPIC, payload(make_event("inc-after-restart")))
        assert service.wait_for(lambda: service.counters.stored == 1, 10), service.snapshot()


def test_start_fails_clearly_when_the_broker_is_unreachable(tmp_path: Path) -> None:
    from gridwatch.app.broker import free_port

    service = CentralService(f"mqtt://127.0.0.1:{free_port()}", f"sqlite:///{tmp_path / 'c.db'}")
    with pytest.raises(CentralError, match="not subscribed"):
        service.start(timeout=0.5)


def test_two_instances_in_one_share_group_keep_one_case_per_incident(
    broker: MosquittoBroker, tmp_path: Path, pg_url: str
) -> None:
    """Load sharing (opt-in `share_group`): messages of one incident land on both instances; the final state is
    still the newest."""
    incidents = [lifecycle(f"inc-shared-{i:03d}", updates=3) for i in range(8)]
    a = make_service(broker, tmp_path, "5", pg_url, client_id="central-a", share_group="central")
    b = make_service(broker, tmp_path, "5", pg_url, client_id="central-b", share_group="central")
    with a, b, connected(broker.url) as pub:
        for step in range(5):
            for events in incidents:
                publish(pub, INCIDENT_TOPIC, payload(events[step]))
        total = 8 * 5
        deadline = time.monotonic() + 30
        while a.counters.stored + b.counters.stored < total and time.monotonic() < deadline:
            a.wait_for(lambda: False, 0.1)
        with a.store.session() as session:
            errors = list(session.scalars(select(DeadLetter.error)))
        assert (a.counters.stored + b.counters.stored, errors) == (total, []), (a.snapshot(), b.snapshot())
        assert a.counters.stored > 0 and b.counters.stored > 0  # the load was shared
        with a.store.session() as session:
            cases = list(session.scalars(select(Case)))
            assert session.scalar(select(func.count()).select_from(EventRow)) == total
    assert len(cases) == 8
    assert {(c.last_seq, c.status) for c in cases} == {(4, "resolved_on_camera")}
    assert len({c.case_number for c in cases}) == 8
