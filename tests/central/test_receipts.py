"""Central's receipts (`central/receipts.py`): after the commit, every final outcome goes back to the gateway that
sent the message, batched per gateway and bounded. The unit half uses plain values; the service half a FakeSession."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

import gridwatch.central.handler as handler_module
from gridwatch.app.poll import wait_until
from gridwatch.central.ingest import IngestResult
from gridwatch.central.receipts import ReceiptSender
from gridwatch.central.roster import Roster
from gridwatch.central.service import CentralService
from gridwatch.central.transport import FakeSession, Inbound
from gridwatch.wire.receipts import parse_receipt
from tests.central.factories import GRID_A, make_event, payload

PREFIX = "gridwatch/v1"
TOPIC = f"{PREFIX}/site-1/gw-1/cam-1/incident"
EVIDENCE = f"{PREFIX}/site-1/gw-1/cam-1/evidence"
RECEIPTS = f"{PREFIX}/site-1/gw-1/receipt"


class Sent:
    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.messages: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, body: bytes) -> int | None:
        if not self.up:
            return None
        self.messages.append((topic, body))
        return len(self.messages)

    def ids(self, topic: str = RECEIPTS, kind: str = "incident") -> list[str]:
        return [i for t, b in self.messages if t == topic for i in parse_receipt(b).ids(kind)]  # type: ignore[arg-type]


def eid() -> str:
    return str(uuid.uuid4())


def test_ids_are_batched_per_gateway_and_sent_on_flush() -> None:
    sent = Sent()
    receipts = ReceiptSender(sent, PREFIX, max_delay_s=60)
    a, b, c = eid(), eid(), eid()
    receipts.after_commit(Inbound(TOPIC, b""), IngestResult("created", "inc-1", a))
    receipts.after_commit(Inbound(EVIDENCE, b""), IngestResult("evidence", "inc-1", a))
    receipts.after_commit(Inbound(f"{PREFIX}/site-1/gw-2/cam-9/incident", b""), IngestResult("duplicate", "i", b))
    receipts.after_commit(Inbound(TOPIC, b""), IngestResult("stale", "inc-1", c))
    assert sent.messages == []  # nothing due yet: one message per gateway on the flush
    assert receipts.flush() == 2
    assert json.loads(sent.messages[0][1]) == {"v": 1, "incident": [a, c], "evidence": [a]}
    assert sent.messages[1] == (f"{PREFIX}/site-1/gw-2/receipt", json.dumps({"v": 1, "incident": [b]},
                                                                            separators=(",", ":")).encode())
    assert receipts.flush() == 0


def test_a_full_batch_or_an_old_one_goes_out_without_a_flush() -> None:
    sent, now = Sent(), [0.0]
    receipts = ReceiptSender(sent, PREFIX, max_ids=3, max_delay_s=0.5, clock=lambda: now[0])
    ids = [eid() for _ in range(4)]
    for i in ids[:3]:
        receipts.after_commit(Inbound(TOPIC, b""), IngestResult("created", "inc", i))
    assert sent.ids() == ids[:3]
    receipts.after_commit(Inbound(TOPIC, b""), IngestResult("created", "inc", ids[3]))
    assert sent.ids() == ids[:3]
    now[0] = 0.6
    receipts.after_commit(Inbound(TOPIC, b""), IngestResult("duplicate", "inc", ids[3]))  # a redelivery
    assert sent.ids() == ids  # sent once per message, even if committed twice
    assert len(sent.messages) == 2


def test_dead_lettered_messages_are_receipted_by_the_id_they_carry() -> None:
    sent = Sent()
    receipts = ReceiptSender(sent, PREFIX, max_delay_s=60)
    a, b, c = eid(), eid(), eid()
    bad_incident = json.dumps({"event_id": a, "seq": 2**62}).encode()
    receipts.after_commit(Inbound(TOPIC, bad_incident), IngestResult("dead_letter", error="refused"))
    receipts.after_commit(Inbound(EVIDENCE, b"\xff\xd8", properties={"event_id": b}),
                          IngestResult("dead_letter", error="sha256"))
    envelope = json.dumps({"incident_id": "inc-1", "event_id": c, "data_b64": "AAAA"}).encode()
    receipts.after_commit(Inbound(EVIDENCE, envelope), IngestResult("dead_letter", error="sha256"))
    for junk in (b"\x00not json", b"[1, 2]", json.dumps({"event_id": "robert'); drop"}).encode()):
        receipts.after_commit(Inbound(TOPIC, junk), IngestResult("dead_letter", error="junk"))
    receipts.after_commit(Inbound(f"{PREFIX}/odd/topic", bad_incident), IngestResult("dead_letter", error="x"))
    receipts.flush()
    assert (sent.ids(), sent.ids(kind="evidence")) == ([a], [b, c])
    assert receipts.stats.unnamed == 4 and receipts.stats.ids == 3


def test_receipts_that_cannot_be_sent_are_counted_not_kept() -> None:
    sent = Sent(up=False)
    receipts = ReceiptSender(sent, PREFIX, max_delay_s=60)
    receipts.after_commit(Inbound(TOPIC, b""), IngestResult("created", "inc", eid()))
    assert receipts.flush() == 0 and receipts.stats.dropped == 1
    sent.up = True
    assert receipts.flush() == 0  # the gateway resends; the duplicate is receipted then


# --- the service ------------------------------------------------------------------------------------------------
def make_service(tmp_path: Path, session: FakeSession) -> CentralService:
    return CentralService("mqtt://127.0.0.1:1", f"sqlite:///{tmp_path / 'cases.db'}", prefix=PREFIX,
                          roster=Roster(default_cleaner="desk", cells={GRID_A: "cleaner-a"}),
                          evidence_dir=tmp_path / "evidence", session=lambda: session)


def receipted(session: FakeSession, kind: str = "incident") -> list[str]:
    return [i for t, b in session.published if t == RECEIPTS for i in parse_receipt(b).ids(kind)]  # type: ignore[arg-type]




def test_the_service_receipts_stored_duplicate_and_dead_lettered_messages_after_the_commit(tmp_path: Path) -> None:
    session = FakeSession()
    first, refused = make_event("inc-rcpt-0001"), make_event("inc-rcpt-0002", site_id="site-9")
    with make_service(tmp_path, session) as service:
        session.deliver(TOPIC, payload(first))
        assert wait_until(lambda: receipted(session) == [str(first.event_id)])
        session.deliver(TOPIC, payload(first))  # the gateway resent it: a duplicate, receipted again
        session.deliver(TOPIC, payload(refused))  # topic and payload disagree: dead-lettered, still final
        assert wait_until(lambda: len(receipted(session)) == 3), session.published
        assert service.counters.duplicates == 1 and service.counters.dead_letters == 1
    assert receipted(session) == [str(first.event_id), str(first.event_id), str(refused.event_id)]


def test_evidence_is_receipted_under_its_own_kind(tmp_path: Path) -> None:
    import hashlib

    session = FakeSession()
    event, jpeg = make_event("inc-rcpt-0003"), b"\xff\xd8\xff" + b"\x00" * 100
    props = {"content_type": "image/jpeg", "incident_id": event.incident_id, "event_id": str(event.event_id),
             "sha256": hashlib.sha256(jpeg).hexdigest()}
    with make_service(tmp_path, session):
        session.deliver(EVIDENCE, jpeg, props)
        assert wait_until(lambda: receipted(session, "evidence") == [str(event.event_id)]), session.published
    assert receipted(session) == []


def test_evidence_without_an_evidence_folder_is_acknowledged_receipted_and_counted_not_stored(
    tmp_path: Path,
) -> None:
    """Without `evidence_dir` central still takes the evidence topic, so a gateway that publishes snapshots gets
    its receipts and drains its outbox (before: not subscribed, never receipted, resent every 15 min and more)."""
    import base64
    import hashlib

    from sqlalchemy import func, select

    from gridwatch.central.store import EvidenceRow

    session = FakeSession()
    event, jpeg = make_event("inc-rcpt-0005"), b"\xff\xd8\xff" + b"\x00" * 100
    props = {"content_type": "image/jpeg", "incident_id": event.incident_id, "event_id": str(event.event_id),
             "sha256": hashlib.sha256(jpeg).hexdigest()}
    older = eid()  # MQTT 3.1.1: the ids travel in a JSON envelope
    envelope = json.dumps({"incident_id": event.incident_id, "event_id": older, "content_type": "image/jpeg",
                           "sha256": props["sha256"], "data_b64": base64.b64encode(jpeg).decode()}).encode()
    service = CentralService("mqtt://127.0.0.1:1", f"sqlite:///{tmp_path / 'cases.db'}", prefix=PREFIX,
                             session=lambda: session)
    with service:
        assert EVIDENCE.replace("site-1/gw-1/cam-1", "+/+/+") in session.subscriptions
        sent = [session.deliver(EVIDENCE, jpeg, props), session.deliver(EVIDENCE, envelope),
                session.deliver(EVIDENCE, b"no id in here")]
        session.deliver(TOPIC, payload(event))
        assert wait_until(lambda: len(receipted(session, "evidence")) == 2 and receipted(session)), session.published
        assert service.counters.evidence_discarded == 3 and service.counters.evidence == 0
        assert service.counters.stored == 1 and service.counters.dead_letters == 0
        with service.store.session() as db:
            assert db.scalar(select(func.count()).select_from(EvidenceRow)) == 0
    assert sorted(receipted(session, "evidence")) == sorted([str(event.event_id), older])
    assert receipted(session) == [str(event.event_id)]
    assert {m.mid for m in sent} <= set(session.acked)  # the one without an id too: nothing would take it
    assert service.receipts is not None and service.receipts.stats.unnamed == 1
    assert not (tmp_path / "evidence").exists()


def test_nothing_is_receipted_when_the_commit_did_not_happen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A message left un-acknowledged (here: the store raised and the dead letter failed too) is not receipted:
    the broker delivers it again, and the gateway keeps its row."""
    session = FakeSession()
    monkeypatch.setattr(handler_module.MessageHandler, "_commit_with_retry", lambda self, msg: None)
    with make_service(tmp_path, session) as service:
        session.deliver(TOPIC, payload(make_event("inc-rcpt-0004")))
        assert service.wait_for(lambda: service.counters.received == 1, 5)
        time.sleep(0.5)
    assert receipted(session) == [] and session.acked == []
