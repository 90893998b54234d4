"""Why incidents end, and incidents carried over a restart (`export` -> `restore`), on tiny synthetic scenes.

A restart is simulated the way the edge does it: the old rule is flushed with `shutdown` and exported, a new rule
(a new process) restores the records shifted onto its own capture clock, which starts again at 0.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import count

import pytest

from gridwatch.pipelines.dwell import StationaryDwellRule
from gridwatch.pipelines.lifecycle import TokenFactory
from gridwatch.pipelines.littering import LitteringRule
from gridwatch.pipelines.types import IncidentUpdate, OpenIncident
from tests.pipelines.helpers import build_rule, obs, times
from tests.pipelines.test_parking import KERB, run

DOWNTIME_S = 100.0  # the old run's clock at the restart is 100 s ahead of the new run's


def tokens(prefix: str) -> TokenFactory:
    n = count(1)
    return lambda: f"{prefix}{next(n)}"


def rule(run_name: str = "a") -> StationaryDwellRule:
    r = build_rule("illegal_parking", (KERB,), "cam1", tokens(run_name), dwell_s=5.0, end_after_s=3.0,
                   update_every_s=60.0)
    assert isinstance(r, StationaryDwellRule)
    return r


def litter_rule(run_name: str) -> LitteringRule:
    r = build_rule("littering", (), "cam1", tokens(run_name), dwell_s=3.0, end_after_s=3.0, update_every_s=60.0)
    assert isinstance(r, LitteringRule)
    return r


def shifted(records: list[OpenIncident], by: float) -> list[OpenIncident]:
    """Records on the next run's capture clock (what the edge's wall-clock round trip does)."""
    return [replace(r, started_ts=r.started_ts - by, last_ts=r.last_ts - by) for r in records]


def parked(r: StationaryDwellRule, duration_s: float, start: float = 0.0, cx: float = 200) -> list[IncidentUpdate]:
    return run(r, [(t, [obs(1, "car", cx, 150)]) for t in times(duration_s, start=start)])


def first_run() -> tuple[IncidentUpdate, IncidentUpdate, list[OpenIncident]]:
    """A car parks at t=0; the gateway stops at t=10 (the car is still there). Returns started, ended, records."""
    old = rule("a")
    ups = parked(old, 10.0)
    ended = old.flush(10.0, "shutdown")
    assert [u.phase for u in ups] == ["started"] and len(ended) == 1
    return ups[0], ended[0], shifted(old.export(), DOWNTIME_S)


def test_an_incident_unseen_for_the_absence_grace_ends_as_gone() -> None:
    r = rule()
    ups = parked(r, 8.0) + run(r, [(t, []) for t in times(5, start=8)])
    assert [(u.phase, u.end_reason) for u in ups] == [("started", None), ("ended", "gone")]


@pytest.mark.parametrize("reason", ["shutdown", "source_ended", "stream_lost"])
def test_flush_says_why_the_camera_stopped_watching(reason: str) -> None:
    r = rule()
    parked(r, 8.0)
    assert [(u.phase, u.end_reason) for u in r.flush(8.0, reason)] == [("ended", reason)]  # type: ignore[arg-type]


def test_ended_needs_a_reason_and_only_ended_has_one() -> None:
    started, ended, _ = first_run()
    with pytest.raises(ValueError, match="end_reason"):
        replace(ended, end_reason=None)
    with pytest.raises(ValueError, match="end_reason"):
        replace(started, end_reason="gone")


def test_incident_ids_come_from_the_injected_token_factory() -> None:
    started, _, _ = first_run()
    assert started.incident_id == "cam1-illegal_parking-a1"


def test_export_holds_what_a_restart_needs() -> None:
    started, ended, records = first_run()
    assert len(records) == 1
    rec = records[0]
    assert (rec.incident_id, rec.type, rec.seq) == (started.incident_id, "illegal_parking", ended.seq)
    assert rec.started_ts == pytest.approx(started.started_ts - DOWNTIME_S)
    assert rec.zone == "kerb" and rec.first_box == started.box


def test_restored_incident_found_again_continues_with_the_same_id_seq_and_start() -> None:
    started, ended, records = first_run()
    new = rule("b")
    new.restore(records, 0.0)
    ups = parked(new, 3.0)  # the same car at the same place, seen from the new run's first frame
    assert [u.phase for u in ups] == ["updated"]  # no new `started`, no second incident
    resumed = ups[0]
    assert resumed.incident_id == started.incident_id
    assert resumed.seq == ended.seq + 1
    assert resumed.started_ts == pytest.approx(started.started_ts - DOWNTIME_S)  # dwell counts from the original
    assert resumed.ts < 2.5  # no new dwell (5 s): only the stillness window (2 s) and the zone debounce
    assert resumed.dwell_s == pytest.approx(DOWNTIME_S + resumed.ts, abs=0.01)
    later = parked(new, 10.0, start=3.0) + run(new, [(t, []) for t in times(5, start=13)])
    assert [(u.phase, u.end_reason) for u in later] == [("ended", "gone")]
    assert later[-1].incident_id == started.incident_id and later[-1].seq == resumed.seq + 1


def test_restored_incident_not_found_within_the_grace_ends_as_gone() -> None:
    started, ended, records = first_run()
    new = rule("b")
    new.restore(records, 0.0)
    # the grace is end_after_s (3 s) + the stillness window (2 s): the time the rule needs to report a car at all
    assert run(new, [(t, []) for t in times(5)]) == []
    ups = run(new, [(t, []) for t in times(1, start=5)])
    assert [(u.incident_id, u.phase, u.end_reason, u.seq) for u in ups] == [
        (started.incident_id, "ended", "gone", ended.seq + 1)
    ]
    assert ups[0].ts == pytest.approx(0.0)  # gone as of the restart: it was not there when the camera came back
    assert new.export() == []


def test_a_car_elsewhere_is_a_new_incident_and_the_restored_one_ends_as_gone() -> None:
    started, _, records = first_run()
    new = rule("b")
    new.restore(records, 0.0)
    ups = parked(new, 8.0, cx=330)  # another car, further along the kerb, does not overlap
    assert sorted((u.incident_id, u.phase, u.end_reason or "") for u in ups) == [
        ("cam1-illegal_parking-a1", "ended", "gone"), ("cam1-illegal_parking-b1", "started", "")
    ]
    assert started.incident_id == "cam1-illegal_parking-a1"


def test_a_car_driving_over_the_restored_spot_does_not_continue_it() -> None:
    started, _, records = first_run()
    new = rule("b")
    new.restore(records, 0.0)
    ups = run(new, [(t, [obs(3, "car", 150 + 20 * t, 150)]) for t in times(6)])  # 20 px/s through the spot
    assert [(u.incident_id, u.phase, u.end_reason) for u in ups] == [(started.incident_id, "ended", "gone")]


def test_a_second_restart_during_the_grace_keeps_the_incident_pending() -> None:
    started, ended, records = first_run()
    second = rule("b")
    second.restore(records, 0.0)
    run(second, [(t, []) for t in times(1)])
    assert second.flush(1.0, "shutdown") == []  # already ended when the first run stopped; nothing new to say
    third = rule("c")
    third.restore(shifted(second.export(), 50.0), 0.0)
    ups = parked(third, 3.0)
    assert [(u.incident_id, u.phase, u.seq) for u in ups] == [(started.incident_id, "updated", ended.seq + 1)]


def test_export_before_flush_has_the_last_seq_sent() -> None:
    old = rule("a")
    ups = parked(old, 10.0)
    assert [r.seq for r in old.export()] == [ups[-1].seq]
    ended = old.flush(10.0, "shutdown")
    assert [r.seq for r in old.export()] == [ended[0].seq]


def test_restored_littering_continues_without_a_new_dwell() -> None:
    old = litter_rule("a")
    frames = [(t, [obs(1, "litter", 100, 150, w=10, h=10), obs(2, "person", 105 + 20 * t, 150, h=60)])
              for t in times(10)]
    ups = run(old, frames)
    assert [u.phase for u in ups] == ["started"]
    ended = old.flush(10.0, "shutdown")
    new = litter_rule("b")
    new.restore(shifted(old.export(), DOWNTIME_S), 0.0)
    again = run(new, [(t, [obs(5, "litter", 100, 150, w=10, h=10)]) for t in times(3)])
    assert [(u.incident_id, u.phase, u.seq) for u in again] == [(ups[0].incident_id, "updated", ended[0].seq + 1)]
    assert again[0].ts < 2.5  # no new dwell: only the stillness window
