"""fallen_wire and street_vendor on scene-change regions (`unknown_object`), with the rules' defaults.

Uncalibrated unless a test says otherwise: a person's box is 80 px tall, so the vendor's goods radius is
1.5 x 80 = 120 px and the goods' minimum area is 0.15 x 80² = 960 px² of boxes (or 3 regions).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gridwatch.pipelines.types import IncidentUpdate, Observation, anchor_of
from gridwatch.pipelines.wire_shape import WireShape, is_wire_shaped
from gridwatch.pipelines.zones import Zone
from tests.pipelines.helpers import build_rule, obs, times

Script = Callable[[float], list[Observation]]
MIN_STATIC_S = 3.0
ROAD = Zone("road", ((0.0, 150.0), (640.0, 150.0), (640.0, 360.0), (0.0, 360.0)))


def region(tid: int, box: tuple[float, float, float, float], t: float, drop: float, *, elongation: float,
           area: float | None = None, ground: tuple[float, float] | None = None, conf: float = 0.6) -> Observation:
    return Observation(tid, "unknown_object", conf, box, anchor_of(box), ground, age_s=t - drop, area_m2=area,
                       elongation=elongation)


def person(tid: int, x: float, bottom: float = 250, ground: tuple[float, float] | None = None) -> Observation:
    return obs(tid, "person", x, bottom, w=30, h=80, ground=ground)


def run(name: str, script: Script, duration: float = 40.0, fps: float = 5.0, zones: tuple[Zone, ...] = (),
        **settings: object) -> list[IncidentUpdate]:
    rule = build_rule(name, zones=zones, **settings)
    out: list[IncidentUpdate] = []
    for t in times(duration, fps):
        out.extend(rule.update(script(t), t))
    return out


def started(ups: list[IncidentUpdate]) -> list[IncidentUpdate]:
    return [u for u in ups if u.phase == "started"]


# --- fallen_wire ----------------------------------------------------------------------------------------------

WIRE_BOX = (60.0, 240.0, 560.0, 262.0)  # a cable lying across the road: 500 px long, its box 22 px tall


def wire_falls(elongation: float = 40.0, box: tuple[float, float, float, float] = WIRE_BOX) -> Script:
    """The cable falls at t=5 and lies still; the stage emits its region from t=8 (age 3 s)."""
    def script(t: float) -> list[Observation]:
        return [region(9, box, t, drop=5.0, elongation=elongation)] if t >= 5 + MIN_STATIC_S else []
    return script


def test_long_thin_region_across_the_road_is_a_fallen_wire_after_the_dwell() -> None:
    ups = started(run("fallen_wire", wire_falls(), zones=(ROAD,)))
    assert len(ups) == 1
    u = ups[0]
    assert u.zone == "road"
    assert u.started_ts == pytest.approx(5.0, abs=0.05)  # back-dated to the fall
    assert 8.0 <= u.ts <= 10.0  # the region is 3 s old (the dwell), confirmed still over frames once it shows
    assert [(o.role, o.track_id, o.class_name) for o in u.objects] == [("subject", 9, "unknown_object")]


def test_at_two_analysis_fps_a_wire_region_is_reported_on_its_third_sighting() -> None:
    """The stage has already watched the region still for min_static_s; the rule's own confirmation is three
    sightings (1.0 s at 2 fps), so the report lands 1 s after the region first shows, not 1.5 s."""
    ups = started(run("fallen_wire", wire_falls(), fps=2.0, zones=(ROAD,)))
    assert [(u.started_ts, u.ts) for u in ups] == [(5.0, 9.0)]


def test_a_wire_re_found_in_pieces_after_the_view_was_lost_stays_one_incident() -> None:
    """While the view cannot be registered the stage pauses and the cable's region vanishes; registered again,
    the cable comes back as two pieces under new track ids (their IoU with the whole is small). Each lies inside
    the incident's box: one fallen wire, not three."""
    left, right = (60.0, 240.0, 180.0, 262.0), (430.0, 240.0, 560.0, 262.0)  # IoU with the whole 0.24, 0.26

    def script(t: float) -> list[Observation]:
        if t < 8 or 16 <= t < 19:
            return []
        if t < 16:
            return [region(9, WIRE_BOX, t, drop=5.0, elongation=40.0)]
        return [region(20, left, t, drop=5.0, elongation=15.0), region(21, right, t, drop=5.0, elongation=18.0)]

    ups = run("fallen_wire", script, fps=2.0, zones=(ROAD,))
    assert len(started(ups)) == 1
    assert len({u.incident_id for u in ups}) == 1


def test_a_fallen_cable_is_fallen_wire_not_also_exposed_garbage() -> None:
    assert started(run("exposed_garbage", wire_falls(), duration=60.0, zones=(ROAD,), dwell_s=10.0)) == []
    blob = (280.0, 220.0, 330.0, 262.0)  # a compact region nobody put down is garbage
    assert len(started(run("exposed_garbage", wire_falls(elongation=1.3, box=blob), duration=60.0, zones=(ROAD,),
                           dwell_s=10.0))) == 1


def test_a_piece_of_a_lost_cable_is_not_exposed_garbage_but_a_bag_by_a_visible_cable_is() -> None:
    """The cable's region vanishes while the view cannot be registered (16-19 s) and its end comes back alone,
    compact (elongation 2), inside the cable's box: a piece of the cable, not a pile. A bag set down inside the
    box of a cable still in view is a bag."""
    end_piece = (480.0, 240.0, 520.0, 262.0)

    def lost_then_piece(t: float) -> list[Observation]:
        if t < 8 or 16 <= t < 19:
            return []
        if t < 16:
            return [region(9, WIRE_BOX, t, drop=5.0, elongation=40.0)]
        return [region(20, end_piece, t, drop=17.0, elongation=2.0)]

    def bag_by_cable(t: float) -> list[Observation]:
        cable = [region(9, WIRE_BOX, t, drop=5.0, elongation=40.0)] if t >= 8 else []
        return cable + ([region(20, end_piece, t, drop=17.0, elongation=2.0)] if t >= 20 else [])

    assert started(run("exposed_garbage", lost_then_piece, duration=60.0, zones=(ROAD,), dwell_s=10.0)) == []
    assert len(started(run("exposed_garbage", bag_by_cable, duration=60.0, zones=(ROAD,), dwell_s=10.0))) == 1


def test_round_blob_is_not_a_wire() -> None:
    blob = (280.0, 220.0, 330.0, 262.0)
    assert started(run("fallen_wire", wire_falls(elongation=1.3, box=blob), zones=(ROAD,))) == []


def test_region_without_a_measured_shape_is_not_a_wire() -> None:
    def script(t: float) -> list[Observation]:
        o = region(9, WIRE_BOX, t, drop=5.0, elongation=40.0)
        return [Observation(o.track_id, o.class_name, o.confidence, o.box, o.anchor, age_s=o.age_s)] if t >= 8 else []
    assert started(run("fallen_wire", script)) == []


def test_elongated_but_thick_strip_is_not_a_wire() -> None:
    shape = WireShape(min_elongation=6.0, max_thickness_m=0.3, max_thickness_px=20.0)
    box = (60.0, 240.0, 560.0, 262.0)
    thin = region(1, box, 10.0, 5.0, elongation=40.0, area=0.5, ground=(0.0, 8.0))  # 4.5 m x 0.11 m
    thick = region(1, box, 10.0, 5.0, elongation=8.0, area=8.0, ground=(0.0, 8.0))  # 8 m x 1 m: cardboard, a kerb
    wide_px = region(1, (0.0, 0.0, 600.0, 300.0), 10.0, 5.0, elongation=6.5)  # 670 px / 6.5 = 103 px thick
    assert is_wire_shaped(thin, shape)
    assert not is_wire_shaped(thick, shape)
    assert not is_wire_shaped(wide_px, shape)


def test_detected_wire_on_the_road_is_still_reported() -> None:
    def script(t: float) -> list[Observation]:
        return [obs(5, "wire", 300, 262, w=400, h=20, conf=0.8)] if t >= 5 else []
    ups = started(run("fallen_wire", script, zones=(ROAD,)))
    assert len(ups) == 1 and ups[0].started_ts == pytest.approx(5.0, abs=0.05)


def test_detected_wire_high_up_off_the_ground_is_not_a_fallen_wire() -> None:
    """Calibrated camera: the kerb car has a ground point; the wire between the poles, high in the view, has none
    (its footprint is above the horizon). Without a calibration, zones on the ground say the same."""
    def calibrated(t: float) -> list[Observation]:
        return [obs(1, "car", 500, 330, w=120, h=60, ground=(3.0, 6.0)),
                obs(5, "wire", 300, 40, w=500, h=16, conf=0.8)]

    def uncalibrated(t: float) -> list[Observation]:
        return [obs(5, "wire", 300, 40, w=500, h=16, conf=0.8)]

    assert started(run("fallen_wire", calibrated)) == []
    assert started(run("fallen_wire", uncalibrated, zones=(ROAD,))) == []


def test_wire_region_on_a_calibrated_camera_carries_its_area() -> None:
    def script(t: float) -> list[Observation]:
        return [region(9, WIRE_BOX, t, drop=5.0, elongation=40.0, area=0.4, ground=(1.0, 9.0))] if t >= 8 else []
    ups = started(run("fallen_wire", script))
    assert len(ups) == 1 and ups[0].objects[0].area_m2 == pytest.approx(0.4)


# --- street_vendor --------------------------------------------------------------------------------------------

def goods(tid: int, x: float, t: float, drop: float, w: float = 40, h: float = 16, bottom: float = 252,
          area: float | None = None, ground: tuple[float, float] | None = None) -> Observation:
    return region(tid, (x - w / 2, bottom - h, x + w / 2, bottom), t, drop, elongation=w / h, area=area,
                  ground=ground)


def vendor_sets_up(t: float) -> list[Observation]:
    """A vendor walks in, stops at x=300 at t=4 and lays out three bundles of goods at t=5-7 (regions 3 s later)."""
    out = [person(1, 100 + 50 * t if t < 4 else 300)]
    for i, (x, drop) in enumerate([(250, 5.0), (350, 6.0), (300, 7.0)]):
        if t >= drop + MIN_STATIC_S:
            out.append(goods(20 + i, x, t, drop, bottom=262 if x == 300 else 252))
    return out


def test_person_staying_with_goods_around_is_a_street_vendor() -> None:
    ups = run("street_vendor", vendor_sets_up, zones=(ROAD,), dwell_s=20.0)
    first = started(ups)
    assert len(first) == 1
    u = first[0]
    assert u.started_ts == pytest.approx(5.0, abs=0.05)  # the first goods put down (the vendor was still already)
    assert 25.0 <= u.ts <= 26.0
    roles = sorted((o.role, o.track_id) for o in u.objects)
    assert roles == [("goods", 20), ("goods", 21), ("goods", 22), ("vendor", 1)]
    assert 0.6 <= u.confidence <= 0.9
    assert u.zone == "road"


def test_calibrated_vendor_with_one_large_blanket_of_goods() -> None:
    def script(t: float) -> list[Observation]:
        out = [person(1, 300, ground=(0.0, 10.0))]
        if t >= 8:
            out.append(goods(20, 340, t, drop=5.0, w=90, h=30, area=2.0, ground=(1.0, 10.5)))
        return out
    ups = started(run("street_vendor", script, dwell_s=20.0))
    assert len(ups) == 1
    assert [o.area_m2 for o in ups[0].objects if o.role == "goods"] == [pytest.approx(2.0)]


def test_crowd_at_a_bus_stop_without_goods_is_not_a_vendor() -> None:
    def crowd(t: float) -> list[Observation]:
        return [person(i + 1, x + (2 if int(t) % 2 else 0)) for i, x in enumerate([200, 250, 300, 350, 400])]
    assert started(run("street_vendor", crowd, dwell_s=10.0)) == []


def test_person_on_a_bench_with_one_small_bag_is_not_a_vendor() -> None:
    def bench(t: float) -> list[Observation]:
        out = [person(1, 300)]
        if t >= 5 + MIN_STATIC_S:
            out.append(goods(20, 330, t, drop=5.0, w=20, h=16))  # 320 px² < 960 px²
        return out
    assert started(run("street_vendor", bench, dwell_s=10.0)) == []


def test_calibrated_person_with_two_small_bags_is_not_a_vendor() -> None:
    def bench(t: float) -> list[Observation]:
        out = [person(1, 300, ground=(0.0, 10.0))]
        if t >= 8:
            out += [goods(20, 330, t, 5.0, area=0.1, ground=(0.4, 10.0)),
                    goods(21, 270, t, 5.0, area=0.12, ground=(-0.4, 10.0))]
        return out
    assert started(run("street_vendor", bench, dwell_s=10.0)) == []


def test_region_hanging_from_the_top_of_the_frame_is_not_goods() -> None:
    """The demo's false vendor before the fix: a region cut by the top of the frame (the upper part of a cable
    that fell, a pole) beside a person standing at the edge of the view is not goods on the ground."""
    def script(t: float) -> list[Observation]:
        out = [person(1, 10, bottom=135)]
        if t >= 8:
            out.append(region(13, (62.0, 0.0, 108.0, 124.0), t, drop=5.0, elongation=2.7))
        return out
    assert started(run("street_vendor", script, dwell_s=10.0)) == []


def test_calibrated_region_off_the_ground_plane_is_not_goods() -> None:
    def script(t: float) -> list[Observation]:
        out = [person(1, 300, ground=(0.0, 10.0))]
        if t >= 8:
            out.append(goods(20, 340, t, drop=5.0, w=90, h=30, area=None, ground=None))
        return out
    assert started(run("street_vendor", script, dwell_s=10.0)) == []


def test_goods_with_nobody_beside_them_are_not_a_vendor() -> None:
    def lone(t: float) -> list[Observation]:
        return [goods(20 + i, x, t, 2.0) for i, x in enumerate([250, 300, 350])] if t >= 5 else []
    assert started(run("street_vendor", lone, dwell_s=10.0)) == []
    assert len(started(run("exposed_garbage", lone, dwell_s=10.0))) == 3  # the other rule takes them


def test_pile_that_was_there_before_the_person_stopped_is_not_their_goods() -> None:
    def waits_beside_pile(t: float) -> list[Observation]:
        out = [goods(20 + i, x, t, 0.0) for i, x in enumerate([250, 300, 350])] if t >= 3 else []
        if t >= 20:  # someone arrives 20 s after the pile appeared and waits beside it
            out.append(person(1, 300))
        return out
    assert started(run("street_vendor", waits_beside_pile, duration=60.0, dwell_s=10.0)) == []


def test_vendor_who_walks_off_is_no_longer_reported_and_the_incident_ends() -> None:
    def leaves(t: float) -> list[Observation]:
        out = vendor_sets_up(t)
        if t >= 30:
            out = [o for o in out if o.class_name != "person"]
        return out
    ups = run("street_vendor", leaves, duration=60.0, dwell_s=20.0)
    assert [u.phase for u in ups if u.phase != "updated"] == ["started", "ended"]


def test_detected_stall_is_still_a_vendor_by_itself() -> None:
    def script(t: float) -> list[Observation]:
        return [obs(4, "stall", 300, 250, w=80, h=60)] if t >= 2 else []
    ups = started(run("street_vendor", script, dwell_s=10.0))
    assert len(ups) == 1 and ups[0].objects[0].role == "subject"
