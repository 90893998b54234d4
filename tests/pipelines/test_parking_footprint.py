"""Issue 6: the point the parking rule tests against a zone, checked against real geometry.

A car (the synthetic world's 3-D sedan) is placed in the kerb strip and in the first traffic lane under many
camera poses (the suite's street camera across the road, its height, tilt and heading varied); its box is the
one the renderer labels. The kerb strip is 2.5 m wide; a car 1.8 m wide parked 1.3-1.6 m from the kerb lies
wholly inside it, a car in the lane (4 m out) wholly outside. The rule's zone point must put the first inside
and the second outside on every pose; the old point (the box bottom raised 0.1 of its height) is the car's
road-side edge and put a car 1.6 m out outside on about a third of the poses.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from gridwatch.calibration.ground import GroundMapping
from gridwatch.pipelines.incidents.illegal_parking import ParkingRuleConfig
from gridwatch.pipelines.types import anchor_of
from gridwatch.synth.actors import car_thing
from gridwatch.synth.render import render_frame
from gridwatch.synth.scenario import CarSpec, Scenario, parse_scenario
from gridwatch.synth.scene import make_camera, make_frame
from gridwatch.synth.world import StreetFrame
from tests.conftest import REPO

KERB_LANE_M = 2.5
LIFT = ParkingRuleConfig().footprint_lift


def poses(n: int = 8) -> list[Scenario]:
    template = (REPO / "synth" / "scenarios" / "suite" / "pos_parking.yaml").read_text()
    rng = np.random.default_rng(6)
    out = []
    for k in range(n):
        d = yaml.safe_load(template)
        d["camera"]["tilt_deg"] += float(rng.uniform(-4, 4))
        d["camera"]["heading_deg"] += float(rng.uniform(-10, 10))
        d["camera"]["height_m"] += float(rng.uniform(-1, 2))
        out.append(parse_scenario(d, f"pose-{k}"))
    return out


def zone_point_out(sc: Scenario, frame: StreetFrame, along: float, out: float, lift: float) -> float | None:
    """How far out from the kerb (metres, negative = towards the road) the zone point of the car's box lands;
    None when the car is not wholly in view."""
    cam = make_camera(sc)
    spec = CarSpec(kind="car", id="car", waypoints=[{"t": 0.0, "along": along, "out": out}])
    thing = car_thing("car", frame.pose(along, out), spec)
    labels = render_frame(cam, np.zeros((cam.height, cam.width, 3), np.uint8), [thing], shadows=False).labels
    if not labels:
        return None
    b = labels[0]
    if b.x1 <= 0 or b.x2 >= cam.width or b.y2 >= cam.height:
        return None
    uv = np.array([anchor_of((b.x1, b.y1, b.x2, b.y2), lift)])
    return float(frame.to_street(GroundMapping.from_camera(cam).pixel_to_enu(uv)[0])[1])


def sweep(out: float, lift: float) -> list[float]:
    found = []
    for sc in poses():
        frame = make_frame(sc)
        for along in (-6.0, -3.0, 0.0, 3.0, 6.0):
            o = zone_point_out(sc, frame, along, out, lift)
            if o is not None:
                found.append(o)
    assert len(found) >= 8, "too few poses show the whole car"
    return found


@pytest.mark.parametrize("out", [-1.3, -1.6])
def test_a_car_parked_inside_the_kerb_strip_is_judged_inside_on_every_pose(out: float) -> None:
    points = sweep(out, LIFT)
    assert all(-KERB_LANE_M <= p <= 0.0 for p in points), sorted(points)[:5]
    assert abs(float(np.median(points)) - out) < 0.4  # about the middle of its footprint


def test_a_car_in_the_first_lane_is_judged_outside_on_every_pose() -> None:
    points = sweep(-4.0, LIFT)
    assert max(points) < -KERB_LANE_M - 1.0, max(points)


def test_the_old_point_was_the_car_s_road_side_edge() -> None:
    points = sweep(-1.6, 0.1)  # the car's road-side edge is at -2.5, the strip's edge
    assert float(np.median(points)) < -2.2
    assert sum(p < -KERB_LANE_M for p in points) >= len(points) // 5
