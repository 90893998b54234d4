"""A broker SIGKILL loses nothing when gateways wait for central's receipts (issue 8), with real processes.

Mosquitto acknowledges a QoS 1 message before it saves it. This broker never saves before the kill (persistence
on, no autosave: the worst case of the crash window), and central is held busy so most events wait in the
broker's queue when it dies. Two gateways send the same burst through the real outbox, publisher and paho
transport: one deletes rows on the PUBACK (`confirm="puback"`, the fallback), one waits for receipts (the
default). The PUBACK gateway loses what the broker lost, which shows the window is really open here; the receipt
gateway sends it again after the reconnect and central ends with every one of its incidents, once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gridwatch.app.broker import MosquittoBroker
from gridwatch.central.service import CentralService
from gridwatch.central.store import Case
from gridwatch.central.transport import Inbound
from gridwatch.wire.mqtt import BrokerURL
from gridwatch.wire.outbox import Outbox
from gridwatch.wire.publisher import Confirm, MqttTransport, Publisher
from gridwatch.wire.receipts import ReceiptListener
from gridwatch.wire.topics import incident_topic, receipt_topic
from tests.central.factories import make_event, payload

pytestmark = pytest.mark.e2e

PREFIX, SITE = "gridwatch/v1", "site-crash"
EVENTS = 60  # per gateway; central (batch_size 5) holds at most 10 in flight, the rest wait in the broker's memory
NO_SAVE = ["autosave_on_changes false", "autosave_interval 3600"]


@contextmanager
def gateway(tmp: Path, broker: MosquittoBroker, name: str, confirm: Confirm) -> Iterator[tuple[Outbox, Publisher,
                                                                                                ReceiptListener]]:
    box = Outbox(tmp / f"{name}.db")
    transport = MqttTransport(BrokerURL.parse(broker.url), f"crash-{name}", keepalive_s=10)
    listener = ReceiptListener(receipt_topic(PREFIX, SITE, name), box)
    if confirm == "receipt":
        transport.subscribe(listener.topic, listener.on_message)
    publisher = Publisher(box, transport, confirm=confirm, resend_s=(2.0, 8.0)).start()
    try:
        yield box, publisher, listener
    finally:
        publisher.stop()
        box.close()


def burst(box: Outbox, publisher: Publisher, name: str) -> set[str]:
    ids = set()
    for i in range(EVENTS):
        event = make_event(f"inc-crash-{name}-{i:04d}", site_id=SITE, gateway_id=name, camera_id="cam-1")
        box.put("incident", incident_topic(PREFIX, SITE, name, "cam-1"), payload(event), key=str(event.event_id))
        ids.add(event.incident_id)
    publisher.notify()
    return ids


def until(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(predicate())  # type: ignore[operator]


def cases(service: CentralService, prefix: str) -> tuple[set[str], int]:
    with service.store.session() as session:
        ids = set(session.scalars(select(Case.incident_id).where(Case.incident_id.startswith(prefix))))
        rows = int(session.scalar(select(func.count()).select_from(Case).where(
            Case.incident_id.startswith(prefix))) or 0)
    return ids, rows


def test_a_broker_sigkill_loses_acknowledged_events_only_without_receipts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = MosquittoBroker(persistence=True, settings=NO_SAVE).start()
    service = CentralService(broker.url, f"sqlite:///{tmp_path / 'cases.db'}", prefix=PREFIX,
                             client_id="crash-central", batch_size=5).start()
    gate = threading.Event()
    handle = service._handle_batch

    def held(batch: list[Inbound]) -> None:  # central busy: the broker queues what it cannot hand over
        gate.wait(60)
        handle(batch)

    monkeypatch.setattr(service, "_handle_batch", held)
    try:
        with gateway(tmp_path, broker, "gw-receipt", "receipt") as (rbox, rpub, listener), \
                gateway(tmp_path, broker, "gw-puback", "puback") as (pbox, ppub, _):
            assert until(lambda: rpub.stats.reconnects and ppub.stats.reconnects, 10), "gateways not connected"
            wanted = burst(rbox, rpub, "gw-receipt")
            others = burst(pbox, ppub, "gw-puback")
            assert until(lambda: rbox.counts() == {"pending": 0, "published": EVENTS} and len(pbox) == 0, 30), \
                (rbox.counts(), len(pbox))  # every event acknowledged by the broker, none saved by it
            broker.kill()
            broker.start()
            gate.set()
            assert until(lambda: len(rbox) == 0, 90), (rbox.counts(), listener.stats, rpub.stats)
            assert until(lambda: cases(service, "inc-crash-gw-receipt")[1] == EVENTS, 30)
            time.sleep(1.0)  # anything else central still had in hand
            stored, rows = cases(service, "inc-crash-gw-receipt")
            lost_without = len(others - cases(service, "inc-crash-gw-puback")[0])
    finally:
        gate.set()
        service.stop()
        broker.stop()
    assert stored == wanted and rows == EVENTS, f"lost {len(wanted - stored)}, duplicate cases {rows - len(stored)}"
    assert listener.stats.settled == EVENTS and listener.stats.refused == 0
    assert rpub.stats.republished > 0  # the reconnect sent the unreceipted rows again
    print(f"PUBACK gateway lost {lost_without} of {EVENTS}; receipt gateway lost {len(wanted - stored)}")
    assert lost_without > 0, "the broker lost nothing: this test did not open the crash window"
