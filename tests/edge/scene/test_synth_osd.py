"""The scene-change stage on rendered street scenes with what real cameras show besides the street: a burnt-in
clock (seconds change every second, the minute turns over), swaying foliage and a blinking lamp.

Rendered at 2 fps from the benchmark's scenarios (synth/scenarios/suite/neg_osd.yaml, pos_littering_osd.yaml),
with the labelled persons and cars passed in as tracks, as the camera pipeline does with its tracker's output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import supervision as sv

from gridwatch.edge.config import SceneChangeConfig
from gridwatch.edge.scene.stage import SceneChangeStage, SceneOutput
from gridwatch.synth.actors import CLASSES
from gridwatch.synth.effects import osd_text
from gridwatch.synth.scenario import load_scenario
from gridwatch.synth.scene import Scene

SUITE = Path(__file__).resolve().parents[3] / "synth" / "scenarios" / "suite"
MASKED = {"person", "car"}


def analyse(name: str) -> tuple[Scene, list[tuple[float, SceneOutput, sv.Detections]]]:
    """(scene, [(t, stage output, litter labels)]) at 2 fps."""
    scene = Scene.compile(load_scenario(SUITE / f"{name}.yaml"))
    stage = SceneChangeStage(SceneChangeConfig())
    out = []
    tracks: sv.Detections | None = None
    for k in range(int(scene.scenario.duration_s * 2)):
        i = k * round(scene.scenario.fps / 2)
        t = i / scene.scenario.fps
        frame = scene.frame_at(t, i)
        result = stage.update(frame.image, t, tracks)
        tracks = _labels(frame.labels, MASKED)
        out.append((t, result, _labels(frame.labels, {"litter"})))
    return scene, out


def _labels(labels: list, names: set[str]) -> sv.Detections:  # type: ignore[type-arg]
    rows = [lb for lb in labels if CLASSES[lb.class_id] in names]
    if not rows:
        return sv.Detections.empty()
    return sv.Detections(xyxy=np.array([[lb.x1, lb.y1, lb.x2, lb.y2] for lb in rows], np.float32),
                         data={"class_name": np.array([CLASSES[lb.class_id] for lb in rows])})


def test_the_clock_really_ticks_and_turns_the_minute() -> None:
    clock = load_scenario(SUITE / "neg_osd.yaml").effects.osd_clock
    assert clock is not None
    assert osd_text(clock, 9.9).endswith("12:04:59") and osd_text(clock, 10.0).endswith("12:05:00")


def test_a_clock_swaying_foliage_and_a_blinking_lamp_are_no_region() -> None:
    _, results = analyse("neg_osd")
    found = [(t, o.regions.xyxy.astype(int).tolist()) for t, o, _ in results if len(o.regions)]
    assert not found, found[:5]


def test_a_bag_dropped_on_a_camera_with_a_clock_and_a_tree_is_the_only_region() -> None:
    _, results = analyse("pos_littering_osd")
    bag = next(lit for _, _, lit in reversed(results) if len(lit))
    bx, by = (bag.xyxy[0, 0] + bag.xyxy[0, 2]) / 2, (bag.xyxy[0, 1] + bag.xyxy[0, 3]) / 2
    seen = [(t, o.regions.xyxy) for t, o, _ in results if len(o.regions)]
    assert seen, "the bag was never a region"
    for t, boxes in seen:
        for x1, y1, x2, y2 in boxes:
            assert abs((x1 + x2) / 2 - bx) <= 20 and abs((y1 + y2) / 2 - by) <= 20, (t, (x1, y1, x2, y2), (bx, by))
    assert seen[0][0] <= 6.0 + 3.0 + 4.0  # dropped at 6 s: found a few seconds after it lies still
    assert seen[-1][0] == results[-1][0]  # and kept to the end
