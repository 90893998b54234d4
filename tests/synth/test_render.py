"""Rendering and labels: boxes agree with the 3D world, stay put when the world does, and are repeatable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridwatch.synth.actors import CLASSES
from gridwatch.synth.render import Label
from gridwatch.synth.scenario import load_scenario, parse_scenario
from gridwatch.synth.scene import Scene

DEMO = Path(__file__).resolve().parents[2] / "synth" / "scenarios" / "demo.yaml"


@pytest.fixture(scope="module")
def demo() -> Scene:
    return Scene.compile(load_scenario(DEMO))


def _by_key(labels: list[Label]) -> dict[str, Label]:
    return {lb.key: lb for lb in labels}


@pytest.mark.parametrize(
    ("t", "key"),
    [(6.0, "parker"), (12.5, "walker"), (12.5, "walker/drop"), (20.0, "stall"), (20.0, "vendor"), (12.0, "t2")],
)
def test_label_box_contains_projected_ground_point(demo: Scene, t: float, key: str) -> None:
    labels = _by_key(demo.frame_at(t).labels)
    assert key in labels, f"{key} not labelled at t={t}: {sorted(labels)}"
    thing = next(th for th in demo.things_at(t) if th.key == key)
    ((u, v),) = demo.camera.ground_to_pixel(thing.anchor[None, :2])
    lb = labels[key]
    assert lb.x1 <= u <= lb.x2 and lb.y1 <= v <= lb.y2 + 1.0


@pytest.mark.parametrize(("key", "times"), [("parker", (6.0, 25.0, 45.0)), ("stall", (9.0, 40.0))])
def test_stationary_objects_keep_their_box(demo: Scene, key: str, times: tuple[float, ...]) -> None:
    boxes = [(lb.x1, lb.y1, lb.x2, lb.y2) for t in times for lb in demo.frame_at(t).labels if lb.key == key]
    assert len(boxes) == len(times)
    assert all(b == pytest.approx(boxes[0]) for b in boxes)


def test_moving_car_box_moves(demo: Scene) -> None:
    a, b = (_by_key(demo.frame_at(t).labels).get("t2") for t in (12.0, 12.4))
    assert a is not None and b is not None and abs(a.x1 - b.x1) > 20


def test_litter_appears_at_drop_time_and_class_ids_match(demo: Scene) -> None:
    assert "walker/drop" not in _by_key(demo.frame_at(11.9).labels)
    dropped = _by_key(demo.frame_at(12.0).labels)["walker/drop"]
    assert CLASSES[dropped.class_id] == "litter"
    assert dropped.y2 - dropped.y1 >= 10.0, "the demo bag must stay detectable (>= 10 px tall)"


@pytest.mark.parametrize(("t", "labelled"), [(29.9, False), (31.5, True), (45.0, True)])
def test_wire_is_labelled_only_once_down(demo: Scene, t: float, labelled: bool) -> None:
    assert ("wire" in _by_key(demo.frame_at(t).labels)) == labelled


@pytest.mark.parametrize("item", ["fridge", "mattress"])
def test_bulky_waste_is_drawn_from_its_time_on_and_never_labelled(item: str) -> None:
    """Bulky waste has no detector class: it changes the picture (the scene-change stage's business) but gives no
    YOLO label, so no training set and no label detector ever contains it."""
    sc = parse_scenario({
        "look": {"noise_sigma": 0.0, "flicker": 0.0},
        "street": {"bearing_deg": 270.0, "kerb_distance_m": 12.0},
        "actors": [{"kind": "bulky", "id": "junk", "t": 2.0, "along": 0.0, "out": 2.0, "item": item}],
    })
    scene = Scene.compile(sc)
    before, after = scene.frame_at(1.9), scene.frame_at(2.0)
    assert before.labels == [] and after.labels == []
    changed = np.abs(after.image.astype(np.int16) - before.image.astype(np.int16)).max(axis=2) > 30
    assert changed.sum() > 150, f"the {item} must be visible: {int(changed.sum())} pixels changed"
    ((u, v),) = scene.camera.ground_to_pixel(scene.frame.to_enu(0.0, 2.0)[None, :])
    ys, xs = np.nonzero(changed)
    assert xs.min() <= u <= xs.max() and ys.min() <= v <= ys.max() + 2, "drawn where it stands"


def test_demo_fridge_is_in_view_and_unlabelled(demo: Scene) -> None:
    keys = {th.key for th in demo.things_at(30.0)}
    assert "fridge" in keys and "fridge" not in {th.key for th in demo.things_at(25.9)}
    assert "fridge" not in _by_key(demo.frame_at(30.0).labels)


def test_same_seed_same_pixels(demo: Scene) -> None:
    again = Scene.compile(load_scenario(DEMO))
    a, b = demo.frame_at(13.0, 130), again.frame_at(13.0, 130)
    assert np.array_equal(a.image, b.image)
    assert a.labels == b.labels
    assert not np.array_equal(a.image, demo.frame_at(13.0, 131).image), "noise must differ frame to frame"


def test_hidden_object_is_not_labelled() -> None:
    """A small bag directly behind a van (from the camera) is not a training target."""
    sc = parse_scenario(
        {
            "camera": {"height_m": 1.5, "tilt_deg": 5.0, "heading_deg": 0.0},
            "street": {"bearing_deg": 270.0, "kerb_distance_m": 12.0, "facade": False},
            "actors": [
                {"kind": "car", "id": "van", "style": "van", "waypoints": [{"t": 0, "along": 0.0, "out": -4.0}]},
                {"kind": "litter", "id": "bag", "along": 0.0, "out": -1.0, "size_m": 0.4},
                {"kind": "litter", "id": "bag2", "along": -4.0, "out": -1.0, "size_m": 0.4},
            ],
        }
    )
    labels = _by_key(Scene.compile(sc).frame_at(1.0).labels)
    assert "van" in labels and "bag2" in labels
    assert "bag" not in labels


def test_yolo_values_are_normalised(demo: Scene) -> None:
    for lb in demo.frame_at(13.0).labels:
        c, cx, cy, w, h = lb.yolo(640, 360)
        assert 0 <= c < len(CLASSES)
        assert all(0.0 <= x <= 1.0 for x in (cx, cy, w, h))
        assert cx - w / 2 >= -1e-9 and cx + w / 2 <= 1 + 1e-9
