"""A central without `--evidence-dir` still receipts evidence, so a gateway that publishes snapshots drains its
outbox (issue 8), with a real Mosquitto, a central service and a gateway made of the real outbox, publisher, paho
transport and receipt listener. Before, such a central never subscribed to the evidence topic: the gateway's
evidence rows waited as `published` and were resent after every reconnect and every 15 min, for ever.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gridwatch.app.broker import MosquittoBroker
from gridwatch.app.poll import wait_until
from gridwatch.central.service import CentralService
from gridwatch.central.store import Case, EvidenceRow
from gridwatch.wire.mqtt import BrokerURL
from gridwatch.wire.outbox import Outbox
from gridwatch.wire.publisher import MqttTransport, Publisher
from gridwatch.wire.receipts import ReceiptListener
from gridwatch.wire.topics import evidence_topic, incident_topic, receipt_topic
from tests.central.factories import make_event, payload

pytestmark = pytest.mark.e2e

PREFIX, SITE, GATEWAY = "gridwatch/v1", "site-noev", "gw-noev"
EVENTS = 12


def put_burst(box: Outbox) -> None:
    """What the edge's outbox sink puts for a started event with a snapshot: the incident and its evidence."""
    for i in range(EVENTS):
        event = make_event(f"inc-noev-{i:04d}", site_id=SITE, gateway_id=GATEWAY, camera_id="cam-1")
        key = str(event.event_id)
        box.put("incident", incident_topic(PREFIX, SITE, GATEWAY, "cam-1"), payload(event), key=key)
        jpeg = b"\xff\xd8\xff\xe0" + key.encode() + b"\xff\xd9"
        props = {"content_type": "image/jpeg", "incident_id": event.incident_id, "event_id": key,
                 "sha256": hashlib.sha256(jpeg).hexdigest()}
        box.put("evidence", evidence_topic(PREFIX, SITE, GATEWAY, "cam-1"), jpeg, props, key=key)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_central_without_an_evidence_folder_receipts_evidence_so_the_outbox_drains(
    tmp_path: Path, protocol: str
) -> None:
    with MosquittoBroker() as broker:
        service = CentralService(broker.url, f"sqlite:///{tmp_path / 'cases.db'}", prefix=PREFIX,
                                 client_id=f"noev-central-{protocol}", protocol=protocol).start()  # type: ignore[arg-type]
        box = Outbox(tmp_path / "outbox.db")
        transport = MqttTransport(BrokerURL.parse(broker.url), "noev-gateway", protocol,  # type: ignore[arg-type]
                                  keepalive_s=10)
        listener = ReceiptListener(receipt_topic(PREFIX, SITE, GATEWAY), box)
        transport.subscribe(listener.topic, listener.on_message)
        publisher = Publisher(box, transport, confirm="receipt").start()  # as a gateway does by default
        try:
            assert wait_until(lambda: publisher.stats.reconnects > 0, 10), "gateway not connected"
            put_burst(box)
            publisher.notify()
            drained = wait_until(lambda: len(box) == 0, 30)
            counts = box.counts()
            with service.store.session() as session:
                cases = session.scalar(select(func.count()).select_from(Case))
                evidence_rows = session.scalar(select(func.count()).select_from(EvidenceRow))
            discarded = service.counters.evidence_discarded
        finally:
            publisher.stop()
            box.close()
            service.stop()
    assert drained, (counts, listener.stats, publisher.stats)
    assert listener.stats.settled == 2 * EVENTS and listener.stats.refused == 0
    assert (cases, evidence_rows, discarded) == (EVENTS, 0, EVENTS)
    assert not (tmp_path / "evidence").exists()
