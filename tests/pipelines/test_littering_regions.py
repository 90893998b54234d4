"""littering and exposed_garbage on scene-change regions (`unknown_object`, emitted `region_age_s` after the drop).

Uncalibrated: a person's box is 80 px tall, so the owner radius is 80 px and the leave distance 160 px.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import supervision as sv

from gridwatch.pipelines.types import IncidentUpdate, Observation, observations_from_detections
from tests.pipelines.helpers import build_rule, obs, times

Script = Callable[[float], list[Observation]]
MIN_STATIC_S = 3.0  # the scene-change stage emits a region this long after the thing came to rest


def region(tid: int, x: float, t: float, drop: float, *, age: bool = True, area: float | None = 0.12) -> Observation:
    o = obs(tid, "unknown_object", x, 202, w=20, h=14, conf=0.6)
    return Observation(o.track_id, o.class_name, o.confidence, o.box, o.anchor, None,
                       age_s=t - drop if age else None, area_m2=area)


def person(tid: int, x: float) -> Observation:
    return obs(tid, "person", x, 200, w=30, h=80)


def run(name: str, script: Script, duration: float = 30.0, fps: float = 10.0, **settings: object
        ) -> list[IncidentUpdate]:
    rule = build_rule(name, **settings)
    out: list[IncidentUpdate] = []
    for t in times(duration, fps):
        out.extend(rule.update(script(t), t))
    return out


def started(ups: list[IncidentUpdate]) -> list[IncidentUpdate]:
    return [u for u in ups if u.phase == "started"]


def drop_and_walk_away(age: bool = True, speed: float = 120.0) -> Script:
    """Person walks to x=300, sets a bag down at t=5, stays 1 s, walks off right; the region shows from t=8."""
    def script(t: float) -> list[Observation]:
        x = 100 + 40 * t if t < 5 else (300 if t < 6 else 300 + speed * (t - 6))
        out = [person(1, x)] if x < 1200 else []
        if t >= 5 + MIN_STATIC_S:
            out.append(region(7, 305, t, drop=5.0, age=age))
        return out
    return script


def test_drop_and_walk_away_with_a_1s_dwell_is_littering_started_at_the_drop() -> None:
    ups = started(run("littering", drop_and_walk_away(), dwell_s=1.0))
    assert len(ups) == 1
    u = ups[0]
    assert u.started_ts == pytest.approx(5.0, abs=0.05)  # the drop, not the region's appearance at 8 s
    # The owner was last within 160 px at ~7.3 s: 1 s later, just after the region appeared.
    assert 8.0 <= u.ts <= 8.5
    roles = {(o.role, o.track_id, o.class_name) for o in u.objects}
    assert roles == {("subject", 7, "unknown_object"), ("owner", 1, "person")}
    assert u.objects[0].area_m2 == pytest.approx(0.12)
    assert u.confidence == pytest.approx(0.6)


def test_long_dwell_of_minutes() -> None:
    ups = run("littering", drop_and_walk_away(), duration=200.0, fps=2.0, dwell_s=120.0)
    first = started(ups)
    assert len(first) == 1 and first[0].started_ts == pytest.approx(5.0, abs=0.05)
    assert 127.0 <= first[0].ts <= 128.5


@pytest.mark.parametrize("lookback, expected", [(10.0, 1), (0.0, 0)])
def test_owner_is_found_by_looking_back_when_the_region_has_no_age(lookback: float, expected: int) -> None:
    ups = started(run("littering", drop_and_walk_away(age=False), dwell_s=1.0, owner_lookback_s=lookback))
    assert len(ups) == expected
    if ups:
        assert ups[0].started_ts == pytest.approx(8.0, abs=0.05)  # no age: the first appearance
        assert {o.role for o in ups[0].objects} == {"subject", "owner"}


def test_person_standing_next_to_their_bag_is_not_littering() -> None:
    def attended(t: float) -> list[Observation]:
        x = 100 + 40 * t if t < 5 else 300
        out = [person(1, x)]
        if t >= 5 + MIN_STATIC_S:
            out.append(region(7, 305, t, drop=5.0))
        return out

    assert started(run("littering", attended, dwell_s=1.0)) == []
    assert started(run("exposed_garbage", attended, dwell_s=5.0)) == []


def test_region_nobody_put_down_is_exposed_garbage_not_littering() -> None:
    def lone(t: float) -> list[Observation]:
        return [region(7, 305, t, drop=2.0)] if t >= 2 + MIN_STATIC_S else []

    assert started(run("littering", lone, dwell_s=1.0)) == []
    ups = started(run("exposed_garbage", lone, dwell_s=10.0))
    assert len(ups) == 1
    assert ups[0].started_ts == pytest.approx(2.0, abs=0.05)  # back-dated by the region's age
    assert 12.0 <= ups[0].ts <= 12.5
    assert ups[0].objects[0].role == "subject" and ups[0].objects[0].area_m2 == pytest.approx(0.12)


def test_dropped_bag_is_littering_not_also_exposed_garbage() -> None:
    assert started(run("exposed_garbage", drop_and_walk_away(), dwell_s=5.0)) == []


def test_detector_litter_is_exposed_garbage_whoever_left_it() -> None:
    def with_owner(t: float) -> list[Observation]:
        return [person(1, 300), obs(2, "litter", 305, 202, w=12, h=10)]

    assert len(started(run("exposed_garbage", with_owner, dwell_s=5.0))) == 1


def test_crowd_at_a_bus_stop_with_attended_bags_is_nothing() -> None:
    xs = [200, 260, 320, 380, 440]

    def bus_stop(t: float) -> list[Observation]:
        out = [person(i + 1, x + (3 if int(t) % 2 else 0)) for i, x in enumerate(xs)]  # people shuffle a little
        out += [region(20 + i, x + 8, t, drop=3.0 + i) for i, x in enumerate(xs) if t >= 3.0 + i + MIN_STATIC_S]
        return out

    for name in ("littering", "exposed_garbage", "street_vendor"):
        assert started(run(name, bus_stop, dwell_s=5.0)) == [], name


def test_region_fields_come_from_the_detection_data() -> None:
    det = sv.Detections(
        xyxy=np.array([[10, 10, 30, 30], [40, 40, 60, 60]], dtype=float), confidence=np.array([0.6, 0.9]),
        class_id=np.array([0, 1]), tracker_id=np.array([1, 2]),
        data={"class_name": np.array(["unknown_object", "person"]), "region_age_s": np.array([4.5, np.nan]),
              "region_area_m2": np.array([0.3, np.nan])},
    )
    bag, who = observations_from_detections(det)
    assert (bag.age_s, bag.area_m2, bag.width_m) == (4.5, 0.3, None)
    assert (who.age_s, who.area_m2) == (None, None)


def test_person_history_is_bounded() -> None:
    rule = build_rule("littering", dwell_s=1.0)
    for t in times(60):
        rule.update([person(int(t) + 1, 100 + t)], t)  # a new person track every second
    size = rule.state_size()
    rule.update([], 200.0)
    assert size < 60 * 10 and rule.state_size() == 0
