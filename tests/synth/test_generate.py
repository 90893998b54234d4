"""End to end: files on disk, truth timings, dataset layout, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from gridwatch.pipelines.incidents.littering import LitteringRuleConfig
from gridwatch.synth import CLASSES, build_dataset, generate
from gridwatch.synth.__main__ import main
from gridwatch.synth.actors import drop_position
from gridwatch.synth.paths import state_at
from gridwatch.synth.random_scene import random_scenario
from gridwatch.synth.scenario import PersonSpec, load_scenario, parse_scenario
from gridwatch.synth.scene import Scene
from gridwatch.synth.truth import LEAVE_DISTANCE_M, build_truth

DEMO = Path(__file__).resolve().parents[2] / "synth" / "scenarios" / "demo.yaml"


def test_classes_are_fixed() -> None:
    assert CLASSES == ("car", "person", "litter", "stall", "wire")


@pytest.fixture(scope="module")
def demo_truth() -> dict[str, object]:
    return json.loads(build_truth(Scene.compile(load_scenario(DEMO))).to_json())


@pytest.mark.parametrize(
    ("kind", "start", "end", "zone"),
    [
        ("illegal_parking", 5.0, None, "kerb_no_parking"),
        ("littering", 12.0, None, "sidewalk"),
        ("street_vendor", 8.0, None, "sidewalk"),
        ("fallen_wire", 31.2, None, "sidewalk"),
        ("exposed_garbage", 26.0, None, "sidewalk"),
    ],
)
def test_demo_truth_incidents(
    demo_truth: dict[str, object], kind: str, start: float, end: float | None, zone: str
) -> None:
    incidents = [i for i in demo_truth["incidents"] if i["type"] == kind]  # type: ignore[attr-defined]
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc["start_s"] == pytest.approx(start)
    assert inc["end_s"] == end and inc["zone"] == zone and inc["in_view"]


def test_demo_traffic_is_not_parking(demo_truth: dict[str, object]) -> None:
    actors = {i["actor"] for i in demo_truth["incidents"]}  # type: ignore[attr-defined]
    assert not any(a.startswith("t") and a[1:].isdigit() for a in actors)


def test_demo_truth_zones_and_camera(demo_truth: dict[str, object]) -> None:
    zones = {z["name"]: z for z in demo_truth["zones"]}  # type: ignore[attr-defined]
    assert set(zones) == {"kerb_no_parking", "sidewalk", "road"}
    assert all(len(z["image"]) >= 3 and len(z["latlon"]) == 4 for z in zones.values())
    cam = demo_truth["camera"]
    assert set(cam) == {"width", "height", "fx", "fy", "cx", "cy", "height_m", "tilt_deg", "heading_deg", "lat", "lon"}  # type: ignore[arg-type]


def test_generate_writes_video_labels_truth(tmp_path: Path) -> None:
    sc = parse_scenario(
        {
            "name": "short",
            "duration_s": 1.0,
            "fps": 5.0,
            "resolution": [640, 360],
            "camera": {"height_m": 6.0, "tilt_deg": 27.0, "heading_deg": 0.0},
            "street": {"bearing_deg": 270.0, "kerb_distance_m": 12.0},
            "actors": [{"kind": "car", "id": "c", "waypoints": [{"t": 0, "along": 0.0, "out": -1.2}]}],
        }
    )
    video = generate(sc, tmp_path, progress=False)
    cap = cv2.VideoCapture(str(video))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, img = cap.read()
    cap.release()
    assert ok and img.shape == (360, 640, 3) and frames == 5
    assert len(list((tmp_path / "labels").glob("*.txt"))) == 5
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["frame_count"] == 5 and truth["fps"] == 5.0
    line = (tmp_path / "labels" / "000000.txt").read_text().split()
    assert int(line[0]) == 0 and all(0 <= float(x) <= 1 for x in line[1:5])


def test_build_dataset_layout(tmp_path: Path) -> None:
    summary = build_dataset(tmp_path, 4, 2, seed=3)
    for split, n in (("train", 4), ("val", 2)):
        assert len(list((tmp_path / "images" / split).glob("*.jpg"))) == n
        assert len(list((tmp_path / "labels" / split).glob("*.txt"))) == n
    text = summary.data_yaml.read_text()
    assert "train: images/train" in text and "4: wire" in text
    assert sum(summary.instances.values()) > 0


@pytest.mark.parametrize("seed", range(6))
def test_random_family_is_valid_and_visible(seed: int) -> None:
    sc = random_scenario(np.random.default_rng(seed), duration_s=4.0)
    again = random_scenario(np.random.default_rng(seed), duration_s=4.0)
    assert sc == again
    assert 0 < sc.camera.tilt_deg < 90
    parse_scenario(sc.model_dump())  # round-trips through validation


def test_random_family_labels_every_class() -> None:
    rng = np.random.default_rng(11)
    seen: set[int] = set()
    for _ in range(12):
        scene = Scene.compile(random_scenario(rng, duration_s=4.0))
        seen |= {lb.class_id for lb in scene.frame_at(2.0).labels}
    assert seen == set(range(len(CLASSES)))


def test_cli_bad_scenario_exits_2_and_names_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("duration_s: 2\nlook: {noise: 3}\n")
    assert main(["generate", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "look.noise" in err


def test_cli_random_writes_a_loadable_scenario(tmp_path: Path) -> None:
    out = tmp_path / "r.yaml"
    assert main(["random", "--seed", "4", "--duration", "3", "--out", str(out)]) == 0
    sc = load_scenario(out)
    assert sc == random_scenario(np.random.default_rng(4), 3.0, name="random4")


def test_littering_start_equals_drop_time_across_random_scenes() -> None:
    rng = np.random.default_rng(21)
    checked = 0
    while checked < 3:
        sc = random_scenario(rng, duration_s=6.0)
        drops = {f"{a.id}/drop": a.drop.t for a in sc.actors if a.kind == "person" and a.drop is not None}
        if not drops:
            continue
        truth = build_truth(Scene.compile(sc))
        starts = {i.actor: i.start_s for i in truth.incidents if i.type == "littering"}
        assert starts == pytest.approx(drops, abs=1e-3)
        checked += 1


def test_littering_truth_says_when_the_owner_walked_the_leave_distance_away() -> None:
    assert LitteringRuleConfig().leave_distance_m == LEAVE_DISTANCE_M  # the rule and the truth mean the same
    sc = load_scenario(Path(__file__).resolve().parents[2] / "synth" / "scenarios" / "suite" / "pos_littering.yaml")
    (inc,) = [i for i in build_truth(Scene.compile(sc)).incidents if i.type == "littering"]
    walker = next(a for a in sc.actors if isinstance(a, PersonSpec) and a.drop is not None)
    assert walker.drop is not None and inc.start_s == walker.drop.t and inc.owner_left_s is not None
    al, out = drop_position(Scene.compile(sc).frame, walker, walker.drop)

    def away(t: float) -> float:
        st = state_at(walker.waypoints, t)
        assert st is not None
        return float(np.hypot(st.along - al, st.out - out))

    assert away(inc.owner_left_s) > LEAVE_DISTANCE_M >= away(inc.owner_left_s - 0.05)
    assert inc.start_s < inc.owner_left_s
