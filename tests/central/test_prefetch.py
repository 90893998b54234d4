"""The worker parses its next batch while PostgreSQL executes this batch's writes (`CentralService._prefetch`):
the same store, in the same order, as without it; nothing taken ahead is acknowledged before its own commit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select

import gridwatch.central.service as service_module
from gridwatch.central.roster import Roster
from gridwatch.central.service import CentralService
from gridwatch.central.store import Case, DeadLetter, EventRow
from gridwatch.central.transport import FakeSession
from tests.central.conftest import fresh_pg_schema
from tests.central.factories import GRID_A, lifecycle, payload, topic_of

BATCH = 100


def messages() -> list[tuple[str, bytes]]:
    """75 incidents of four events each, and a hostile payload in the middle: 301 messages, three batches+."""
    out = [(topic_of(event), payload(event)) for i in range(75) for event in lifecycle(f"inc-ahead-{i:04d}", 2)]
    out.insert(150, (out[0][0], b'{"event_id": "not json'))
    return out


@contextmanager
def flooded(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CentralService, FakeSession, list[int]]]:
    """A started service whose worker takes its first batch only once every message is in its inbox (as when the
    broker delivers a backlog); the messages' ids."""
    session, gate = FakeSession(), threading.Event()
    real_next = CentralService._next_batch

    def next_batch(self: CentralService) -> Any:
        gate.wait(30)
        return real_next(self)

    monkeypatch.setattr(CentralService, "_next_batch", next_batch)
    svc = CentralService("mqtt://127.0.0.1:1", pg_url, prefix="gridwatch/v1", batch_size=BATCH,
                         roster=Roster(default_cleaner="desk", cells={GRID_A: "cleaner-a"}), session=lambda: session)
    with svc:
        sent = [session.deliver(topic, body).mid for topic, body in messages()]
        gate.set()
        yield svc, session, sent


def store_state(svc: CentralService) -> dict[str, Any]:
    with svc.store.session() as db:
        return {"cases": [(c.case_number, c.incident_id, c.status) for c in db.scalars(select(Case).order_by(Case.id))],
                "events": sorted(db.scalars(select(EventRow.event_id))),
                "letters": [(d.topic, d.error[:40]) for d in db.scalars(select(DeadLetter))]}


def ingest(pg_url: str, ahead: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], list[int], int]:
    """Deliver every message at once; (store, acknowledged ids, messages parsed ahead)."""
    parsed_ahead = [0]
    real = service_module.parse_incident

    def counting(*args: Any) -> Any:
        parsed_ahead[0] += 1
        return real(*args)

    monkeypatch.setattr(service_module, "parse_incident", counting)
    with flooded(pg_url, monkeypatch) as (svc, session, sent):
        if not ahead:
            assert svc._handler is not None
            svc._handler.meanwhile = None
        assert svc.wait_for(lambda: svc.counters.stored + svc.counters.dead_letters == len(sent), 30)
        state = store_state(svc)
    assert session.acked == sent  # every message, in order, each once
    return state, session.acked, parsed_ahead[0]


def test_parsing_ahead_stores_the_same_in_the_same_order(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with_ahead, _acked, parsed = ingest(pg_url, True, monkeypatch)
    assert parsed == 2 * BATCH + 1  # batches 2, 3 and the last message, each taken during the batch before
    assert len(with_ahead["cases"]) == 75 and len(with_ahead["events"]) == 300
    assert [letter[0] for letter in with_ahead["letters"]] == [messages()[150][0]]
    # the reference: the same messages without parsing ahead, in a fresh schema of the same database
    with fresh_pg_schema() as other:
        without, _acked, none_ahead = ingest(other, False, monkeypatch)
    assert none_ahead == 0
    assert [c[1:] for c in with_ahead["cases"]] == [c[1:] for c in without["cases"]]  # same cases, same order
    assert [c[0][-4:] for c in with_ahead["cases"]] == [c[0][-4:] for c in without["cases"]]  # numbered alike
    assert len(with_ahead["events"]) == len(without["events"])
    assert [letter[1] for letter in with_ahead["letters"]] == [letter[1] for letter in without["letters"]]


def test_messages_taken_ahead_are_not_acknowledged_before_their_own_commit(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service stops right after the first batch took the next one ahead: only the first batch is
    acknowledged; the broker delivers the rest again (to the next start)."""
    real_prefetch = CentralService._prefetch

    def prefetch_then_stop(self: CentralService) -> None:
        real_prefetch(self)
        self._stopping.set()

    monkeypatch.setattr(CentralService, "_prefetch", prefetch_then_stop)
    with flooded(pg_url, monkeypatch) as (svc, session, sent):
        assert svc._worker is not None
        svc._worker.join(30)
        assert len(svc._ahead) == BATCH  # taken and parsed, never handled
        assert session.acked == sent[:BATCH]
        with svc.store.session() as db:
            assert len(db.scalars(select(EventRow.event_id)).all()) == BATCH


def test_a_message_that_fails_to_parse_ahead_is_parsed_in_its_batch(pg_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real = service_module.parse_incident
    failed = []

    def flaky(topic: str, body: bytes, *args: Any) -> Any:
        if not failed:
            failed.append(topic)
            raise RuntimeError("parser bug")
        return real(topic, body, *args)

    monkeypatch.setattr(service_module, "parse_incident", flaky)
    with flooded(pg_url, monkeypatch) as (svc, session, sent):
        assert svc.wait_for(lambda: svc.counters.stored + svc.counters.dead_letters == len(sent), 30)
        assert (svc.counters.stored, svc.counters.dead_letters) == (300, 1)
    assert failed and session.acked == sent
