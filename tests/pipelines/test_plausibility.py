"""The plausibility filter: street furniture the detector takes for a vehicle must not become a case."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gridwatch.pipelines.incidents.illegal_parking import ParkingRuleConfig
from gridwatch.pipelines.plausibility import PlausibilityFilter, PlausibilityParams
from gridwatch.pipelines.types import IncidentUpdate, Observation
from tests.pipelines.helpers import build_rule, times


def parked(tid: int = 1, conf: float = 0.8, top: float = 100.0, h: float = 40.0, cls: str = "car",
           width_m: float | None = None) -> Observation:
    box = (100.0, top, 160.0, top + h)
    return Observation(tid, cls, conf, box, (130.0, top + h), None, width_m=width_m)


def run(script, **settings: object) -> list[IncidentUpdate]:  # type: ignore[no-untyped-def]
    """illegal_parking over the whole frame (no zones), 3 s dwell, 20 s at 5 fps."""
    rule = build_rule("illegal_parking", dwell_s=3.0, **settings)
    out: list[IncidentUpdate] = []
    for i, t in enumerate(times(20, fps=5)):
        out.extend(rule.update(script(i, t), t))
    return [u for u in out if u.phase == "started"]


def test_steadily_scored_parked_car_is_reported() -> None:
    assert len(run(lambda i, t: [parked(conf=0.55)])) == 1


def test_low_median_score_is_a_look_alike_even_when_some_frames_score_high() -> None:
    # Passes the rule's min_confidence on every frame, but scores 0.35 on two frames of three.
    def flicker(i: int, t: float) -> list[Observation]:
        return [parked(conf=0.7 if i % 3 == 0 else 0.35)]

    assert run(flicker) == []
    assert len(run(flicker, plausibility={"min_median_score": 0})) == 1


def test_scores_below_min_confidence_count_as_evidence() -> None:
    # Only one frame in three passes min_confidence (0.3): the median is the weak frames' score.
    def mostly_weak(i: int, t: float) -> list[Observation]:
        return [parked(conf=0.8 if i % 3 == 0 else 0.2)]

    f = PlausibilityFilter(PlausibilityParams())
    for i in range(9):
        f.observe(mostly_weak(i, i / 5)[0], i / 5)
    assert f.doubt(parked()) is not None and "median" in f.doubt(parked())  # type: ignore[operator]


def test_box_cut_by_the_top_of_the_frame_is_overhead_not_parked() -> None:
    assert run(lambda i, t: [parked(top=0.0 if i % 4 else 1.5, h=16)]) == []
    assert len(run(lambda i, t: [parked(top=0.0, h=16)], plausibility={"reject_cut_at_top": False})) == 1


def test_box_touching_the_top_now_and_then_still_counts() -> None:
    assert len(run(lambda i, t: [parked(top=0.0, h=48) if i % 4 == 0 else parked(top=8.0, h=40)])) == 1


@pytest.mark.parametrize("width_m, expected", [(1.9, 1), (4.5, 1), (0.4, 0), (20.0, 0), (None, 1)])
def test_width_on_the_ground_must_fit_the_class(width_m: float | None, expected: int) -> None:
    assert len(run(lambda i, t: [parked(width_m=width_m)])) == expected


def test_regions_have_no_detector_score_to_judge() -> None:
    f = PlausibilityFilter(PlausibilityParams())
    region = parked(cls="unknown_object", conf=0.1)
    f.observe(region, 0.0)
    assert f.doubt(region) is None


def test_disabled_filter_lets_everything_through() -> None:
    f = PlausibilityFilter(PlausibilityParams(enabled=False))
    o = parked(conf=0.05, top=0.0)
    f.observe(o, 0.0)
    assert f.doubt(o) is None


def test_evidence_is_bounded_and_pruned() -> None:
    f = PlausibilityFilter(PlausibilityParams(score_history=5))
    for i in range(50):
        f.observe(parked(tid=1), i * 0.2)
    assert len(f.tracks[1].scores) == 5
    f.observe(parked(tid=2), 10.0)
    f.prune(now=40.0, max_age_s=30.0)
    assert set(f.tracks) == {2}


def test_dwell_rule_forgets_look_alikes_it_never_reported() -> None:
    rule = build_rule("illegal_parking", dwell_s=3.0)
    for t in times(5, fps=5):
        rule.update([parked(conf=0.1)], t)  # below min_confidence: only the filter has seen it
    rule.update([], 100.0)
    assert rule.state_size() == 0


def test_width_ranges_are_validated_with_the_field_path() -> None:
    with pytest.raises(ValidationError, match=r"width_m\.car"):
        ParkingRuleConfig.model_validate({"plausibility": {"width_m": {"car": [5, 2]}}})


def test_footprint_off_the_ground_on_a_calibrated_camera_is_not_parked() -> None:
    def scene(i: int, t: float) -> list[Observation]:
        kerb = Observation(5, "car", 0.8, (300.0, 200.0, 360.0, 240.0), (330.0, 236.0), (4.0, 12.0))
        sign = parked(tid=1)  # no ground point: above the horizon of a calibrated camera
        return [kerb, sign]

    assert [u.track_ids for u in run(scene)] == [(5,)]
    assert len(run(lambda i, t: [parked(tid=1)])) == 1  # uncalibrated: no ground points at all, nothing to judge
    assert len(run(scene, plausibility={"reject_off_ground": False})) == 2
