"""Scenario validation: bad files fail with the file and the key path in the message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gridwatch.synth.paths import rest_intervals, state_at
from gridwatch.synth.scenario import ScenarioError, Waypoint, load_scenario, parse_scenario

DEMO = Path(__file__).resolve().parents[2] / "synth" / "scenarios" / "demo.yaml"

CAR = {"kind": "car", "id": "c", "waypoints": [{"t": 0, "along": 0, "out": -1}]}


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"fsp": 10}, "fsp"),
        ({"camera": {"tilt": 20}}, "camera.tilt"),
        ({"actors": [{**CAR, "colr": [1, 2, 3]}]}, "actors.0.car.colr"),
        ({"actors": [{**CAR, "kind": "bus"}]}, "actors.0"),
        (
            {"actors": [{**CAR, "waypoints": [{"t": 5, "along": 0, "out": 0}, {"t": 1, "along": 1, "out": 0}]}]},
            "sort the waypoints",
        ),
        ({"actors": [CAR, CAR]}, "duplicated: ['c']"),
        ({"camera": {"tilt_deg": 95}}, "camera.tilt_deg"),
        ({"resolution": [8, 8]}, "resolution"),
    ],
)
def test_bad_scenarios_name_the_path(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, "bad.yaml")
    assert "bad.yaml" in str(err.value)
    assert needle in str(err.value)


def test_load_scenario_reports_file_path(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"street": {"lanez": 2}}))
    with pytest.raises(ScenarioError, match=r"s\.yaml.*\n.*street\.lanez"):
        load_scenario(p)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def test_demo_scenario_is_valid_and_as_specified() -> None:
    sc = load_scenario(DEMO)
    assert sc.resolution == (640, 360)
    assert 40 <= sc.duration_s <= 60 and 8 <= sc.fps <= 12
    kinds = {a.kind for a in sc.actors}
    assert kinds == {"car", "person", "stall", "wire", "bulky"}


W = [
    Waypoint(t=0, along=0, out=0),
    Waypoint(t=2, along=4, out=0),
    Waypoint(t=5, along=4, out=0),
    Waypoint(t=6, along=4, out=2),
]


@pytest.mark.parametrize(
    ("t", "along", "out", "moving"),
    [
        (0.0, 0.0, 0.0, True),
        (1.0, 2.0, 0.0, True),
        (3.0, 4.0, 0.0, False),
        (5.5, 4.0, 1.0, True),
        (9.0, 4.0, 2.0, False),
    ],
)
def test_state_at_interpolates(t: float, along: float, out: float, moving: bool) -> None:
    st = state_at(W, t)
    assert st is not None
    assert (st.along, st.out, st.moving) == pytest.approx((along, out, moving))


def test_state_before_first_waypoint_is_absent_and_rest_keeps_heading() -> None:
    assert state_at(W[1:], 1.0) is None
    st = state_at(W, 3.0)
    assert st is not None and (st.d_along, st.d_out) == (1.0, 0.0)


def test_rest_intervals() -> None:
    rests = rest_intervals(W)
    assert [(r.start, r.end) for r in rests] == [(2.0, 5.0), (6.0, None)]


def test_bulky_waste_item_must_be_one_the_renderer_draws() -> None:
    with pytest.raises(ScenarioError, match=r"actors\.0\.bulky\.item"):
        parse_scenario({"actors": [{"kind": "bulky", "id": "x", "along": 0.0, "out": 1.0, "item": "sofa"}]})
