"""overflowing_bin and exposed_garbage around bins (`pipelines.bins`), with synthetic detections."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gridwatch.pipelines.bins import overlap_share, widened
from gridwatch.pipelines.types import IncidentUpdate, Observation
from tests.pipelines.helpers import build_rule, obs, times

FPS = 2.0
Script = Callable[[float], list[Observation]]


def run(rule: object, script: Script, duration_s: float) -> list[IncidentUpdate]:
    out: list[IncidentUpdate] = []
    for t in times(duration_s, fps=FPS):
        out.extend(rule.update(script(t), t))  # type: ignore[attr-defined]
    out.extend(rule.flush(duration_s, "source_ended"))  # type: ignore[attr-defined]
    return out


def started(updates: list[IncidentUpdate]) -> list[IncidentUpdate]:
    return [u for u in updates if u.phase == "started"]


def bin_at(x: float = 300, tid: int = 1) -> Observation:
    return obs(tid, "garbage_bin", x, 300, w=40, h=60)


def garbage_on(x: float = 300, tid: int = 2, conf: float = 0.8) -> Observation:
    return obs(tid, "garbage", x, 255, w=50, h=25, conf=conf)  # heaped on the lid, reaching above the bin


def test_geometry() -> None:
    assert overlap_share((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(0.5)
    assert overlap_share((0, 0, 10, 10), (2, 2, 4, 4)) == 1.0  # inside: all of the smaller box
    assert widened((10, 10, 20, 30), 0.5) == (5, 0, 25, 40)


def test_a_bin_with_garbage_on_it_is_reported_after_the_dwell_and_ends_when_emptied() -> None:
    rule = build_rule("overflowing_bin", dwell_s=20, end_after_s=10)
    ups = run(rule, lambda t: [bin_at()] + ([garbage_on()] if t < 50 else []), 80)
    assert [(u.phase, u.ts, u.end_reason) for u in ups if u.phase != "updated"] == [
        ("started", 20.0, None), ("ended", 49.5, "gone")]
    first = started(ups)[0]
    assert [(o.class_name, o.role) for o in first.objects] == [("garbage_bin", "subject")]
    assert first.box == bin_at().box


def test_an_overflow_detection_counts_by_itself_and_its_bin_is_the_one_subject() -> None:
    alone = run(build_rule("overflowing_bin", dwell_s=10), lambda t: [obs(5, "overflow", 300, 300, 60, 80)], 30)
    assert [(u.ts, u.objects[0].class_name) for u in started(alone)] == [(10.0, "overflow")]
    # the street model sees the bin and the overflow box around it: one incident, on the bin
    both = run(build_rule("overflowing_bin", dwell_s=10),
               lambda t: [bin_at(), obs(5, "overflow", 300, 305, 60, 85)], 30)
    assert [(u.ts, u.objects[0].class_name) for u in started(both)] == [(10.0, "garbage_bin")]


@pytest.mark.parametrize(
    ("name", "script"),
    [
        ("empty bin", lambda t: [bin_at()]),
        ("garbage two bin-widths away", lambda t: [bin_at(), garbage_on(x=400)]),
        ("garbage too faint", lambda t: [bin_at(), garbage_on(conf=0.2)]),
        ("a bag on the lid for 15 s", lambda t: [bin_at()] + ([garbage_on()] if 10 <= t < 25 else [])),
        ("garbage on the bin, never long enough at a time", lambda t: [bin_at()] + ([garbage_on()] if t % 40 < 15
                                                                                     else [])),
    ],
)
def test_no_overflowing_bin(name: str, script: Script) -> None:
    assert started(run(build_rule("overflowing_bin", dwell_s=20, end_after_s=10), script, 90)) == [], name


def test_exposed_garbage_takes_loose_garbage_detections_but_leaves_garbage_at_a_bin_to_overflowing_bin() -> None:
    def street(t: float) -> list[Observation]:
        return [bin_at(), garbage_on(), obs(7, "garbage", 500, 320, w=60, h=30)]  # one heap on the bin, one loose

    exposed = started(run(build_rule("exposed_garbage", dwell_s=20), street, 40))
    overflow = started(run(build_rule("overflowing_bin", dwell_s=20), street, 40))
    assert [(u.ts, u.objects[0].track_id) for u in exposed] == [(20.0, 7)]
    assert [(u.ts, u.objects[0].track_id) for u in overflow] == [(20.0, 1)]
    # without bin exclusion, exposed garbage would take the heap on the bin as well
    both = started(run(build_rule("exposed_garbage", dwell_s=20, bin_classes=[]), street, 40))
    assert sorted(u.objects[0].track_id for u in both) == [2, 7]


def test_exposed_garbage_defaults_read_the_street_models_garbage_class() -> None:
    rule = build_rule("exposed_garbage", dwell_s=20)
    assert [u.ts for u in started(run(rule, lambda t: [obs(7, "garbage", 500, 320, 60, 30)], 40))] == [20.0]
