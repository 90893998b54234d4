"""The benchmark's scenario suite (synth/scenarios/suite): every file loads, renders and states its truth."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gridwatch.synth.effects import light_gain, shake_offset
from gridwatch.synth.scenario import EffectsSpec, ScenarioError, load_scenario, parse_scenario
from gridwatch.synth.scene import Scene
from gridwatch.synth.truth import build_truth

REPO = Path(__file__).resolve().parents[2]
SUITE = sorted((REPO / "synth" / "scenarios" / "suite").glob("*.yaml"))
sys.path.insert(0, str(REPO / "benchmarks"))

from synth_labels import StridedLabelDetector  # noqa: E402


def test_the_suite_covers_every_incident_type_and_the_hard_negatives() -> None:
    names = {p.stem for p in SUITE}
    types = {i.type for p in SUITE for i in build_truth(Scene.compile(load_scenario(p))).incidents}
    assert types == {"illegal_parking", "littering", "exposed_garbage", "street_vendor", "fallen_wire"}
    assert {"neg_light_stop", "neg_person_standing", "neg_bag_pickup", "neg_parked_leaves", "neg_cloud",
            "neg_lights_on", "neg_shake", "neg_rain", "neg_jpeg"} <= names


@pytest.mark.parametrize("path", SUITE, ids=[p.stem for p in SUITE])
def test_each_scenario_is_short_renders_and_its_truth_is_in_view(path: Path) -> None:
    sc = load_scenario(path)
    assert 20 <= sc.duration_s <= 60 and sc.fps == 10 and sc.resolution == (640, 360)
    scene = Scene.compile(sc)
    for i in (0, sc.frame_count // 2):
        frame = scene.frame_at(i / sc.fps, i)
        assert frame.image.shape == (360, 640, 3)
    truth = build_truth(scene)
    assert all(inc.in_view for inc in truth.incidents)
    assert bool(truth.incidents) == path.stem.startswith("pos_") or path.stem == "neg_parked_leaves"


def test_a_bag_picked_up_again_is_drawn_only_in_between_and_is_not_littering() -> None:
    sc = load_scenario(REPO / "synth" / "scenarios" / "suite" / "neg_bag_pickup.yaml")
    scene = Scene.compile(sc)
    keys = [{t.key for t in scene.things_at(t)} for t in (6.0, 10.0, 15.0)]
    assert ["shopper/drop" in k for k in keys] == [False, True, False]
    assert build_truth(scene).incidents == []


def test_pickup_before_the_drop_is_rejected() -> None:
    with pytest.raises(ScenarioError, match="pickup_s"):
        parse_scenario({"actors": [{"kind": "person", "id": "p", "waypoints": [{"t": 0, "along": 0, "out": 1}],
                                    "drop": {"t": 5.0, "pickup_s": 4.0}}]})


def test_light_keys_interpolate_and_hold_and_shake_is_bounded_and_seeded() -> None:
    fx = EffectsSpec.model_validate({"light": [{"t": 5, "gain": 1.0}, {"t": 15, "gain": 0.5}], "shake_px": 3.0})
    assert [light_gain(fx, t) for t in (0.0, 10.0, 20.0)] == [1.0, 0.75, 0.5]
    offsets = [shake_offset(fx, 1, i) for i in range(50)]
    assert all(abs(dx) <= 3 and abs(dy) <= 3 for dx, dy in offsets) and len(set(offsets)) > 40
    assert offsets == [shake_offset(fx, 1, i) for i in range(50)]
    assert shake_offset(EffectsSpec(), 1, 3) == (0.0, 0.0) and light_gain(EffectsSpec(), 3.0) == 1.0
    with pytest.raises(ValueError, match="sort"):
        EffectsSpec.model_validate({"light": [{"t": 5, "gain": 1.0}, {"t": 1, "gain": 0.5}]})


def test_street_lights_switching_on_brighten_the_frame_at_once() -> None:
    scene = Scene.compile(load_scenario(REPO / "synth" / "scenarios" / "suite" / "neg_lights_on.yaml"))
    before, after = scene.frame_at(11.9, 119).image.mean(), scene.frame_at(12.2, 122).image.mean()
    assert after > 1.8 * before


def test_the_strided_label_detector_hides_litter_and_skips_frames(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    for i in range(10):  # frame i: a car, and from frame 5 on also litter (class 2)
        rows = ["0 0.5 0.5 0.2 0.2"] + (["2 0.1 0.1 0.05 0.05"] if i >= 5 else [])
        (labels / f"{i:06d}.txt").write_text("\n".join(rows) + "\n")
    det = StridedLabelDetector(labels, stride=5)
    img = np.zeros((360, 640, 3), np.uint8)
    first, second, past_end = det.detect(img), det.detect(img), det.detect(img)
    assert list(first.data["class_name"]) == ["car"] and list(second.data["class_name"]) == ["car"]
    assert len(past_end) == 0
    shown = StridedLabelDetector(labels, stride=5, hidden=frozenset())
    shown.detect(img)
    assert sorted(shown.detect(img).data["class_name"]) == ["car", "litter"]
