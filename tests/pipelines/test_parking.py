from __future__ import annotations

from dataclasses import replace

import pytest

from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule
from gridwatch.pipelines.incidents.illegal_parking import ParkingRuleConfig
from gridwatch.pipelines.types import IncidentUpdate
from gridwatch.pipelines.zones import Zone
from tests.pipelines.helpers import build_rule, obs, times

KERB = Zone("kerb", ((0, 100), (400, 100), (400, 200), (0, 200)))


def rule(dwell: float = 5.0, **kw: object) -> StationaryDwellRule:
    r = build_rule("illegal_parking", (KERB,), dwell_s=dwell, **kw)
    assert isinstance(r, StationaryDwellRule)
    return r


def run(r: StationaryDwellRule, frames: list[tuple[float, list]]) -> list[IncidentUpdate]:
    out: list[IncidentUpdate] = []
    for ts, observations in frames:
        out.extend(r.update(observations, ts))
    return out


def test_parked_car_in_zone_starts_after_dwell_and_ends_when_it_leaves() -> None:
    r = rule(dwell=5.0, end_after_s=2.0)
    frames = [(t, [obs(1, "car", 200, 150)]) for t in times(12)]
    frames += [(t, []) for t in times(4, start=12)]
    ups = run(r, frames)
    assert [u.phase for u in ups] == ["started", "updated", "ended"] or [u.phase for u in ups] == ["started", "ended"]
    started = ups[0]
    # Still is judged over a 2 s window that starts at the first frame, so the rest starts at t=0.
    assert started.started_ts == pytest.approx(0.0)
    assert started.ts == pytest.approx(5.0, abs=0.15)
    assert started.dwell_s >= 5.0
    assert ups[-1].phase == "ended"
    assert ups[-1].ts == pytest.approx(11.9, abs=0.15)
    assert len({u.incident_id for u in ups}) == 1
    assert [u.seq for u in ups] == list(range(len(ups)))


@pytest.mark.parametrize(
    "name, path",
    [
        ("moving through the zone", lambda t: obs(1, "car", 10 + 30 * t, 150)),
        ("parked outside the zone", lambda t: obs(1, "car", 200, 260)),
        ("person standing in the zone", lambda t: obs(1, "person", 200, 150)),
        ("low-confidence car", lambda t: obs(1, "car", 200, 150, conf=0.1)),
    ],
)
def test_no_incident(name: str, path) -> None:  # type: ignore[no-untyped-def]
    ups = run(rule(), [(t, [path(t)]) for t in times(20)])
    assert ups == [], name


def test_short_stop_below_dwell_is_not_an_incident() -> None:
    frames = [(t, [obs(1, "car", 200, 150)]) for t in times(4)]
    frames += [(t, [obs(1, "car", 200 + 30 * (t - 4), 150)]) for t in times(6, start=4)]
    assert run(rule(dwell=5.0), frames) == []


def test_dwell_uses_capture_time_not_frame_count() -> None:
    # Same 8 s of parking at 10 fps and at 2 fps (dropped frames) fire at the same capture time.
    fired = []
    for fps in (10.0, 2.0):
        ups = run(rule(dwell=5.0), [(t, [obs(1, "car", 200, 150)]) for t in times(8, fps=fps)])
        fired.append(ups[0].ts)
    assert fired[0] == pytest.approx(fired[1], abs=0.55)


def test_new_track_id_on_same_car_keeps_the_incident() -> None:
    r = rule(dwell=3.0, end_after_s=3.0)
    frames = [(t, [obs(1, "car", 200, 150)]) for t in times(6)]
    frames += [(t, [obs(7, "car", 201, 150)]) for t in times(6, start=6)]
    ups = run(r, frames)
    assert len({u.incident_id for u in ups}) == 1
    assert ups[-1].phase != "ended" or ups[-1].ts > 11


def test_flush_ends_open_incidents() -> None:
    r = rule(dwell=2.0)
    run(r, [(t, [obs(1, "car", 200, 150)]) for t in times(5)])
    ended = r.flush(5.0, "shutdown")
    assert [(u.phase, u.end_reason) for u in ended] == [("ended", "shutdown")]


def test_state_is_pruned_for_tracks_that_left() -> None:
    params = replace(DwellParams.from_config(ParkingRuleConfig(dwell_s=5.0), (KERB,)), forget_after_s=5.0)
    r = StationaryDwellRule(params, "cam1-run", "illegal_parking")
    for i in range(200):
        r.update([obs(i, "car", 10 + i, 150)], i * 0.5)
    assert r.state_size() < 40


def test_ground_metres_thresholds_used_when_calibrated() -> None:
    # Pixel anchor jitters by 30 px (far away, tiny box), but the ground point is still: parked.
    frames = [
        (t, [obs(1, "car", 200 + (15 if i % 2 else -15), 150, h=10, ground=(5.0, 20.0))])
        for i, t in enumerate(times(10))
    ]
    ups = run(rule(dwell=5.0), frames)
    assert ups and ups[0].phase == "started"


def test_car_hidden_by_traffic_and_re_found_under_a_new_id_stays_one_incident() -> None:
    r = rule(dwell=3.0, end_after_s=3.0)
    frames = [(t, [obs(1, "car", 200, 150)]) for t in times(5)]
    frames += [(t, []) for t in times(1.5, start=5)]  # a bus passes in front
    frames += [(t, [obs(9, "car", 202, 151)]) for t in times(2, start=6.5)]  # re-found, new id, not yet "still"
    frames += [(t, []) for t in times(2.5, start=8.5)]
    frames += [(t, [obs(12, "car", 199, 150)]) for t in times(3, start=11)]
    ups = run(r, frames)
    assert [u.phase for u in ups if u.phase != "updated"] == ["started"]
    assert len({u.incident_id for u in ups}) == 1
    assert r.flush(14.0, "shutdown")[0].started_ts == ups[0].started_ts


def test_the_part_of_a_parked_car_a_van_leaves_visible_continues_its_incident() -> None:
    """The van hides the car's front: the tracker re-finds only its rear half, under a new id. The half box's IoU
    with the whole car is below reattach_iou, but it lies inside the car's box: the same car, the same incident."""
    r = rule(dwell=3.0, end_after_s=3.0)
    frames = [(t, [obs(1, "car", 200, 150, w=80, h=40)]) for t in times(5)]
    frames += [(t, []) for t in times(1.0, start=5)]  # the van drives in front of it
    frames += [(t, [obs(9, "car", 178, 150, w=20, h=40)]) for t in times(4, start=6)]  # the rear quarter
    ups = run(r, frames)
    assert [u.phase for u in ups if u.phase != "updated"] == ["started"]
    assert len({u.incident_id for u in ups}) == 1
    (ended,) = r.flush(10.0, "shutdown")
    assert ended.incident_id == ups[0].incident_id and [o.track_id for o in ended.objects] == [9]


def test_a_smaller_car_inside_a_visible_parked_cars_box_is_not_taken_for_it() -> None:
    """Re-attaching needs the incident's own track out of sight: while car 1 is seen, car 9 is another car."""
    r = rule(dwell=3.0, end_after_s=3.0)
    frames = [(t, [obs(1, "car", 200, 150, w=80, h=40)]
               + ([obs(9, "car", 180, 150, w=24, h=40)] if t >= 4 else [])) for t in times(10)]
    ups = run(r, frames)
    assert len({u.incident_id for u in ups if u.phase == "started"}) == 2


def test_car_driving_off_along_the_zone_ends_the_incident() -> None:
    r = rule(dwell=3.0, end_after_s=2.0)
    frames = [(t, [obs(1, "car", 100, 150)]) for t in times(8)]
    frames += [(t, [obs(1, "car", 100 + 40 * (t - 8), 150)]) for t in times(6, start=8)]  # stays inside the zone
    ups = run(r, frames)
    assert ups[0].phase == "started" and ups[-1].phase == "ended"
    assert 8.0 < ups[-1].ts < 10.0  # last seen at rest ~8.5 s; ended once it had moved off for end_after_s


# --- which point of a vehicle's box is tested against the zone (issue 6) ---------------------------------------
# KERB spans y 100..200. From a camera across the road, a box's bottom edge is the car's nearest (road-side)
# corner; the middle of its footprint is a quarter of the box height higher.


def test_a_car_whose_footprint_is_in_the_zone_is_parked_though_its_nearest_edge_is_not() -> None:
    car = [(t, [obs(1, "car", 200, 210, h=80)]) for t in times(8)]  # bottom 10 px out; footprint middle at 190
    ups = run(rule(dwell=5.0), car)
    assert [u.phase for u in ups][:1] == ["started"] and ups[0].zone == "kerb"
    assert run(rule(dwell=5.0, footprint_lift=0.1), car) == []  # judged at its nearest edge, as before: missed


def test_a_car_standing_in_the_lane_beyond_the_zone_is_not_parked() -> None:
    car = [(t, [obs(1, "car", 200, 240, h=80)]) for t in times(8)]  # footprint middle at 220: in the lane
    assert run(rule(dwell=5.0), car) == []


def test_only_vehicles_are_judged_at_their_footprint_middle() -> None:
    from gridwatch.pipelines.registry import default_registry

    registry = default_registry()
    assert ParkingRuleConfig().footprint_lift == 0.25
    for name in ("street_vendor", "exposed_garbage", "fallen_wire"):
        assert registry.get(name).config().footprint_lift == 0.1, name  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="footprint_lift"):
        ParkingRuleConfig.model_validate({"footprint_lift": 0.9})
