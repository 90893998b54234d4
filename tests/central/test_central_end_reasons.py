"""Only an end the camera saw (`gone`) resolves a case; a gateway restart continues the same case.

Every test here runs on SQLite and on PostgreSQL (the `store` fixture is parametrised).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gridwatch.central.categories import Category, CategoryTable
from gridwatch.central.store import Case, DeadLetter, EventRow, Store
from tests.central.factories import make_event, payload
from tests.central.test_central_ingest import count, ingest, only_case


@pytest.mark.parametrize("reason", ["shutdown", "source_ended", "stream_lost"])
def test_an_end_because_the_camera_stopped_watching_leaves_the_case_open(store: Store, reason: str) -> None:
    ingest(store, payload(make_event("inc-restart-1", 0, "started")))
    result = ingest(store, payload(make_event("inc-restart-1", 1, "ended", end_reason=reason)))
    assert result.kind == "updated"
    case = only_case(store)
    assert case.status == "reported"
    assert case.ended_at is not None  # not currently observed
    steps = [(t.step, t.detail) for t in case.timeline]
    assert steps[-1][0] == "unobserved" and f"camera stopped watching: {reason}" in steps[-1][1]
    assert "resolved_on_camera" not in [s for s, _ in steps]


def test_an_end_the_camera_saw_resolves_the_case(store: Store) -> None:
    ingest(store, payload(make_event("inc-restart-2", 0, "started")))
    ingest(store, payload(make_event("inc-restart-2", 1, "ended", end_reason="gone")))
    case = only_case(store)
    assert case.status == "resolved_on_camera"
    assert [t.step for t in case.timeline][-2:] == ["ended", "resolved_on_camera"]


def test_an_incident_continued_after_a_restart_updates_the_same_case(store: Store) -> None:
    """started, ended(shutdown) | gateway restarts | updated (seq 2), ended(gone) (seq 3): one case, resolved."""
    for seq, phase, reason in [(0, "started", None), (1, "ended", "shutdown"), (2, "updated", None)]:
        result = ingest(store, payload(make_event("inc-restart-3", seq, phase, end_reason=reason)))
        assert result.kind in ("created", "updated"), result
    case = only_case(store)
    assert (case.status, case.last_seq, case.ended_at) == ("reported", 2, None)  # observed again
    assert [t.step for t in case.timeline][-2:] == ["observed", "updated"]
    ingest(store, payload(make_event("inc-restart-3", 3, "ended", end_reason="gone")))
    assert only_case(store).status == "resolved_on_camera"
    assert count(store, Case) == 1
    assert count(store, DeadLetter) == 0
    assert count(store, EventRow) == 4


def test_auto_filed_case_stays_filed_over_a_shutdown(store: Store) -> None:
    table = CategoryTable(version="t", categories={"illegal_parking": Category(code="09009", name="x", auto_file=True)})
    ingest(store, payload(make_event("inc-restart-4", 0, "started")), table)
    ingest(store, payload(make_event("inc-restart-4", 1, "ended", end_reason="shutdown")), table)
    assert only_case(store).status == "filed"


def test_a_1_0_end_without_a_reason_is_not_taken_as_gone(store: Store) -> None:
    """An old gateway's `ended` may mean it shut down: unknown is no evidence that the scene cleared."""
    ingest(store, payload(make_event("inc-restart-5", 0, "started", schema_version="1.0")))
    result = ingest(store, payload(make_event("inc-restart-5", 1, "ended", schema_version="1.0", end_reason=None)))
    assert result.kind == "updated"
    case = only_case(store)
    assert case.status == "reported"
    assert "reason not given (schema 1.0)" in case.timeline[-1].detail
    assert count(store, DeadLetter) == 0


def test_a_restored_incident_seen_again_first_creates_one_case(store: Store) -> None:
    """The shutdown `ended` may arrive after the continuation; the newer state wins, still one case."""
    ingest(store, payload(make_event("inc-restart-6", 2, "updated")))
    assert ingest(store, payload(make_event("inc-restart-6", 1, "ended", end_reason="shutdown"))).kind == "stale"
    with store.session() as session:
        cases = session.scalars(select(Case)).all()
        assert [(c.status, c.ended_at) for c in cases] == [("reported", None)]
