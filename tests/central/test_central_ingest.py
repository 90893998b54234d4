"""ingest_incident: one case per incident, idempotent on event_id, seq-ordered, bad input dead-lettered.

Every test here runs on SQLite and on PostgreSQL (the `store` fixture is parametrised).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from gridwatch.central.categories import Category, CategoryTable, load_categories
from gridwatch.central.ingest import IngestResult, ingest_incident
from gridwatch.central.roster import Roster
from gridwatch.central.store import Case, DeadLetter, EventRow, Store
from tests.central.factories import GRID_A, GRID_B, T0, lifecycle, make_event, payload

NOW = datetime(2026, 11, 21, 9, 0, 0, tzinfo=timezone.utc)
ROSTER = Roster(default_cleaner="desk", cells={GRID_A: "cleaner-a", GRID_B: "cleaner-b"})
CATEGORIES = load_categories()
TOPIC = "gridwatch/v1/site-1/gw-1/cam-1/incident"


def ingest(store: Store, data: bytes, categories: CategoryTable = CATEGORIES, now: datetime = NOW) -> IngestResult:
    with store.session() as session:
        result = ingest_incident(session, TOPIC, data, categories, ROSTER, now=now)
        session.commit()
        return result


def count(store: Store, model: type[object]) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def only_case(store: Store) -> Case:
    with store.session() as session:
        case = session.scalars(select(Case)).one()
        _ = case.timeline  # load before the session closes
        return case


@pytest.mark.parametrize(
    ("order", "kinds"),
    [
        ([0, 1, 2, 3], ["created", "updated", "updated", "updated"]),
        ([3, 2, 1, 0], ["created", "stale", "stale", "stale"]),
        ([1, 0, 3, 2], ["created", "stale", "updated", "stale"]),
        ([0, 3, 1, 2], ["created", "updated", "stale", "stale"]),
    ],
    ids=["in-order", "reversed", "shuffled", "ended-early"],
)
def test_one_case_per_incident_in_any_order(store: Store, order: list[int], kinds: list[str]) -> None:
    events = lifecycle("inc-lifecycle", updates=2)
    results = [ingest(store, payload(events[i])) for i in order]

    assert [r.kind for r in results] == kinds
    assert count(store, Case) == 1
    assert count(store, EventRow) == 4
    case = only_case(store)
    ended = events[3]
    assert case.last_seq == 3
    assert case.status == "resolved_on_camera"
    assert case.ended_at == ended.ended_at
    assert case.dwell_s == ended.dwell_s
    assert case.last_observed_at == ended.observed_at
    assert case.started_at == T0
    assert case.case_number == "GW-20261121-0001"


def test_duplicate_event_id_is_stored_once_and_changes_nothing(store: Store) -> None:
    started, updated = make_event("inc-dup-001", 0), make_event("inc-dup-001", 1, "updated")
    assert ingest(store, payload(started)).kind == "created"
    assert ingest(store, payload(updated)).kind == "updated"
    steps_before = [t.step for t in only_case(store).timeline]

    results = [ingest(store, payload(e)) for e in (updated, started, updated)]

    assert [r.kind for r in results] == ["duplicate"] * 3
    assert results[0].event_id == str(updated.event_id)
    assert count(store, EventRow) == 2
    assert count(store, Case) == 1
    assert [t.step for t in only_case(store).timeline] == steps_before


def test_older_seq_does_not_overwrite_newer_state(store: Store) -> None:
    ingest(store, payload(make_event("inc-late-01", 0, dwell_s=100)))
    ingest(store, payload(make_event("inc-late-01", 2, "updated", dwell_s=300, confidence=0.9)))

    late = ingest(store, payload(make_event("inc-late-01", 1, "updated", dwell_s=200, confidence=0.5)))

    case = only_case(store)
    assert late.kind == "stale"
    assert (case.dwell_s, case.confidence, case.last_seq) == (300, 0.9, 2)
    assert case.timeline[-1].step == "stale"
    assert count(store, EventRow) == 3  # the late event is still kept


def _valid_dict() -> dict[str, object]:
    return json.loads(payload(make_event("inc-invalid1")))  # type: ignore[no-any-return]


def _with(**changes: object) -> bytes:
    data = _valid_dict()
    for key, value in changes.items():
        if value is _DROP:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data).encode()


_DROP = object()


@pytest.mark.parametrize(
    ("data", "error_fragment"),
    [
        (b"", "invalid IncidentEvent"),
        (b"not json at all", "json_invalid"),
        (b'{"event_id": ', "json_invalid"),
        (b"\xff\xfe\x00garbage", "invalid IncidentEvent"),
        (b"[]", "invalid IncidentEvent"),
        (b"{}", "event_id"),
        (_with(event_id="not-a-uuid"), "event_id"),
        (_with(type="graffiti"), "type"),
        (_with(confidence=1.5), "confidence"),
        (_with(started_at="2026-11-21T08:30:00"), "timezone"),
        (_with(phase="ended"), "ended_at"),
        (_with(incident_id=_DROP), "incident_id"),
        (_with(unexpected="field"), "unexpected"),
        (_with(site_id="site/1/#"), "site_id"),
    ],
    ids=[
        "empty",
        "not-json",
        "truncated",
        "not-utf8",
        "array",
        "empty-object",
        "bad-uuid",
        "unknown-type",
        "confidence>1",
        "naive-time",
        "ended-without-ended_at",
        "missing-incident_id",
        "extra-field",
        "topic-chars-in-id",
    ],
)
def test_bad_payload_goes_to_dead_letters(store: Store, data: bytes, error_fragment: str) -> None:
    result = ingest(store, data)

    assert result.kind == "dead_letter"
    assert result.error is not None and error_fragment in result.error
    assert (count(store, DeadLetter), count(store, EventRow), count(store, Case)) == (1, 0, 0)
    with store.session() as session:
        letter = session.scalars(select(DeadLetter)).one()
    assert letter.payload == data  # kept verbatim
    assert letter.topic == TOPIC
    assert letter.received_at == NOW


@pytest.mark.parametrize(
    ("grid_cell", "located", "cleaner"),
    [
        (GRID_A, True, "cleaner-a"),
        (GRID_B, True, "cleaner-b"),
        ("370203999999", True, "desk"),
        (None, True, "desk"),
        (None, False, "desk"),
    ],
    ids=["cell-a", "cell-b", "unlisted-cell", "no-cell", "uncalibrated"],
)
def test_cleaner_assigned_from_roster_by_grid_cell(
    store: Store, grid_cell: str | None, located: bool, cleaner: str
) -> None:
    result = ingest(store, payload(make_event("inc-roster1", grid_cell=grid_cell, located=located)))

    case = only_case(store)
    assert case.cleaner == cleaner
    assert case.grid_cell == grid_cell
    assert result.dispatch is not None and result.dispatch.cleaner == cleaner
    assert (case.lat is None) is (not located)


@pytest.mark.parametrize(
    ("auto_file", "phases", "status", "steps"),
    [
        (False, ["started"], "reported", ["intake", "assigned"]),
        (True, ["started"], "filed", ["intake", "assigned", "filed"]),
        (
            False,
            ["started", "ended"],
            "resolved_on_camera",
            ["intake", "assigned", "ended", "resolved_on_camera"],
        ),
        (
            True,
            ["ended"],
            "resolved_on_camera",
            ["intake", "assigned", "filed", "ended", "resolved_on_camera"],
        ),
    ],
    ids=["manual", "auto-file", "manual-ended", "created-by-ended"],
)
def test_status_follows_category_auto_file_and_end(
    store: Store, auto_file: bool, phases: list[str], status: str, steps: list[str]
) -> None:
    table = CategoryTable(
        version="test-1",
        categories={"illegal_parking": Category(code="09009", name="机动车乱停放", auto_file=auto_file)},
    )
    for seq, phase in enumerate(phases):
        ingest(store, payload(make_event("inc-status1", seq if len(phases) > 1 else 3, phase)), table)

    case = only_case(store)
    assert case.status == status
    assert [t.step for t in case.timeline] == steps
    assert (case.category_code, case.category_name, case.category_version) == (
        "09009",
        "机动车乱停放",
        "test-1",
    )


def test_unknown_category_still_creates_a_reported_case(store: Store) -> None:
    table = CategoryTable(version="empty", categories={})
    ingest(store, payload(make_event("inc-nocat01")), table)

    case = only_case(store)
    assert (case.status, case.category_code) == ("reported", None)
    assert "uncategorised" in [t.step for t in case.timeline]


def test_case_numbers_count_per_intake_day(store: Store) -> None:
    day2 = NOW + timedelta(days=1)
    numbers = [
        ingest(store, payload(make_event("inc-number1")), now=NOW).case_number,
        ingest(store, payload(make_event("inc-number2")), now=NOW).case_number,
        ingest(store, payload(make_event("inc-number3")), now=day2).case_number,
        ingest(store, payload(make_event("inc-number1", 1, "updated")), now=day2).case_number,
    ]
    assert numbers == ["GW-20261121-0001", "GW-20261121-0002", "GW-20261122-0001", "GW-20261121-0001"]


def test_dispatch_only_on_creation_and_timestamps_are_utc_aware(store: Store) -> None:
    results = [ingest(store, payload(e)) for e in lifecycle("inc-dispatch", updates=1)]

    assert [r.dispatch is not None for r in results] == [True, False, False]
    assignment = results[0].dispatch
    assert assignment is not None
    assert (assignment.case_number, assignment.category_code, assignment.status) == (
        "GW-20261121-0001",
        "09009",
        "reported",
    )
    case = only_case(store)
    for value in (case.started_at, case.last_observed_at, case.ended_at, case.created_at, case.updated_at):
        assert value is not None and value.utcoffset() == timedelta(0)
