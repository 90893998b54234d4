"""Issue 8, hole 1: no account can speak for another. Each test reproduces one way a forged message used to
close or rewrite a case, and checks it is now dead-lettered with its reason while the real gateway's messages
keep applying. Runs on SQLite and PostgreSQL (the `store` fixture)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, inspect, select, text

from gridwatch.central.categories import load_categories
from gridwatch.central.ingest import DEAD_LETTER_PREFIX_BYTES, IngestResult, ingest_incident
from gridwatch.central.roster import Roster
from gridwatch.central.store import Case, DeadLetter, Store, open_store
from gridwatch.central.trust import MAX_INCIDENT_BYTES, MAX_MESSAGES_PER_S, SEQ_SLACK
from gridwatch.wire.events import IncidentEvent
from tests.central.factories import T0, make_event, payload, topic_of

NOW = datetime(2026, 11, 21, 9, 0, 0, tzinfo=timezone.utc)
ROSTER = Roster(default_cleaner="desk", cells={"370203001001": "cleaner-a"})
INCIDENT = "cam-1-illegal_parking-3f9a0c1d2e4b5a69"


def ingest(store: Store, event: IncidentEvent, topic: str | None = None, now: datetime = NOW) -> IngestResult:
    with store.session() as session:
        result = ingest_incident(session, topic or topic_of(event), payload(event), load_categories(), ROSTER,
                                 now=now)
        session.commit()
        return result


def the_case(store: Store) -> Case:
    with store.session() as session:
        return session.scalars(select(Case)).one()


def forged_end(seq: int, **who: str) -> IncidentEvent:
    at = T0 + timedelta(hours=1)
    return make_event(INCIDENT, seq, "ended", located=False, observed_at=at, ended_at=at, dwell_s=3600.0,
                      **who)  # type: ignore[arg-type]


def update(seq: int) -> IncidentEvent:
    at = T0 + timedelta(seconds=seq)
    return make_event(INCIDENT, seq, "updated", located=False, observed_at=at, dwell_s=float(seq))


def test_the_reproduced_attack_no_longer_closes_the_case(store: Store) -> None:
    # A cleaner account learnt the incident id from its dispatch and published `ended` with a huge seq on
    # another site's topic. Before: the case closed and every later real update was stale.
    assert ingest(store, make_event(INCIDENT, 0)).kind == "created"
    attack = forged_end(2**31 - 1)
    result = ingest(store, attack, "gridwatch/v1/site-2/cleaner-a/cam-1/incident")

    assert result.kind == "dead_letter" and result.error is not None
    assert "came on site-2/cleaner-a/cam-1" in result.error
    assert the_case(store).ended_at is None
    assert ingest(store, make_event(INCIDENT, 1, "updated")).kind == "updated"
    assert the_case(store).last_seq == 1


@pytest.mark.parametrize(
    ("who", "topic", "fragment"),
    [
        ({"site_id": "site-2"}, None, "belongs to site 'site-1', not 'site-2'"),  # another site
        ({}, "gridwatch/v1/site-1/gw-2/cam-1/incident", "came on site-1/gw-2/cam-1"),  # topic != payload
        ({"gateway_id": "cleaner-a"}, None, "is a cleaner or central account"),
        ({"gateway_id": "gridwatch-central"}, None, "is a cleaner or central account"),
        ({"gateway_id": "gw-2"}, None, "belongs to site-1/gw-1/cam-1"),  # another gateway of the same site
        ({"camera_id": "cam-2"}, None, "belongs to site-1/gw-1/cam-1"),
        ({}, "gridwatch/v1/site-1/cam-1/incident", "is not gridwatch/v1/{site}/{gateway}/{camera}/incident"),
    ],
    ids=["other-site", "topic-mismatch", "cleaner", "central", "other-gateway", "other-camera", "old-topic"],
)
def test_messages_that_do_not_belong_are_dead_lettered(
    store: Store, who: dict[str, str], topic: str | None, fragment: str
) -> None:
    ingest(store, make_event(INCIDENT, 0))
    result = ingest(store, forged_end(1, **who), topic)

    assert result.kind == "dead_letter" and result.error is not None and fragment in result.error
    assert the_case(store).ended_at is None and the_case(store).last_seq == 0


def test_a_gateway_stays_in_the_site_it_was_first_seen_in(store: Store) -> None:
    ingest(store, make_event("inc-site1-000001", 0))
    other = make_event("inc-site2-000001", 0, site_id="site-2")
    result = ingest(store, other)

    assert result.kind == "dead_letter" and result.error is not None
    assert "gateway 'gw-1' belongs to site 'site-1', not 'site-2'" in result.error


def test_a_seq_may_grow_only_as_fast_as_time_allows(store: Store) -> None:
    ingest(store, make_event(INCIDENT, 0))
    later = NOW + timedelta(seconds=60)
    allowed = SEQ_SLACK + int(MAX_MESSAGES_PER_S * 60)

    jump = ingest(store, update(allowed + 1), now=later)
    assert jump.kind == "dead_letter" and jump.error is not None and "jumps implausibly" in jump.error
    fine = ingest(store, update(allowed), now=later)
    assert fine.kind == "updated"


def test_a_dead_letter_keeps_a_bounded_prefix_its_size_and_hash(store: Store) -> None:
    junk = b"{" + b"x" * (MAX_INCIDENT_BYTES - 1)
    with store.session() as session:
        result = ingest_incident(session, "gridwatch/v1/site-1/gw-1/cam-1/incident", junk, load_categories(),
                                 ROSTER, now=NOW)
        session.commit()
        letter = session.scalars(select(DeadLetter)).one()
    assert result.kind == "dead_letter"
    assert len(letter.payload) == DEAD_LETTER_PREFIX_BYTES and letter.payload == junk[:DEAD_LETTER_PREFIX_BYTES]
    assert letter.payload_size == len(junk) and letter.payload_sha256 is not None


def test_an_oversized_payload_is_refused_before_parsing(store: Store) -> None:
    with store.session() as session:
        result = ingest_incident(session, "gridwatch/v1/site-1/gw-1/cam-1/incident",
                                 b" " * (MAX_INCIDENT_BYTES + 1), load_categories(), ROSTER, now=NOW)
        session.commit()
        assert session.scalar(select(func.count()).select_from(DeadLetter)) == 1
    assert result.error is not None and "over the" in result.error


def test_an_older_database_gains_the_new_columns(tmp_path: object) -> None:
    from pathlib import Path

    db = Path(str(tmp_path)) / "old.db"
    url = f"sqlite:///{db}"
    with open_store(url) as store, store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE dead_letters DROP COLUMN payload_sha256"))
        conn.execute(text("ALTER TABLE evidence DROP COLUMN gateway_id"))
        conn.execute(text("DROP INDEX ix_dispatch_outbox_acked_at"))
        conn.execute(text("ALTER TABLE dispatch_outbox DROP COLUMN acked_at"))
    with open_store(url) as store:
        outbox = inspect(store.engine)
        assert "acked_at" in {c["name"] for c in outbox.get_columns("dispatch_outbox")}
        assert ["acked_at"] in [i["column_names"] for i in outbox.get_indexes("dispatch_outbox")]
        names = {c["name"] for c in inspect(store.engine).get_columns("dead_letters")}
        assert "payload_sha256" in names
        assert "gateway_id" in {c["name"] for c in inspect(store.engine).get_columns("evidence")}
