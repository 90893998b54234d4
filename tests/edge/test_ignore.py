"""Per-camera ignore masks: no detections whose footprint lies inside, no scene-change foreground there."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import supervision as sv

from gridwatch.edge.camera import CameraPipeline
from gridwatch.edge.config import parse_site_config
from gridwatch.edge.frames import Frame
from gridwatch.edge.ignore import build_ignore, drop_ignored, rasterise
from gridwatch.edge.scene.stage import SceneChangeStage
from gridwatch.models.fake import FakeDetector
from tests.edge.scene.test_stage import BG, OBJ, cfg, run, with_patch

CLOCK = {"name": "clock", "points": [[0, 0], [120, 0], [120, 20], [0, 20]]}
OVER_OBJ = {"name": "tree", "points": [[140, 90], [190, 90], [190, 135], [140, 135]]}
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_a_detection_whose_footprint_is_inside_is_dropped_one_that_only_overlaps_is_kept() -> None:
    polygons = build_ignore(parse_site_config(_site([OVER_OBJ])).cameras[0].ignore)
    dets = sv.Detections(xyxy=np.array([[150, 95, 180, 125], [150, 100, 180, 160]], np.float32),
                         confidence=np.array([0.9, 0.8], np.float32), class_id=np.array([0, 0]),
                         data={"class_name": np.array(["car", "car"])})
    kept = drop_ignored(dets, polygons)
    assert kept.xyxy.tolist() == [[150, 100, 180, 160]]  # its bottom edge stands below the mask
    assert len(dets) == 2  # the input is not mutated
    assert drop_ignored(dets, ()) is dets


def test_rasterise_scales_frame_pixels_to_work_pixels() -> None:
    mask = rasterise(build_ignore(parse_site_config(_site([CLOCK])).cameras[0].ignore), 2.0, (90, 160))
    assert mask[0:10, 0:60].all() and not mask[12:, :].any() and not mask[:, 62:].any()


def test_no_scene_change_region_inside_an_ignore_mask_and_one_outside() -> None:
    polygons = build_ignore(parse_site_config(_site([OVER_OBJ])).cameras[0].ignore)
    dropped = run(lambda t: with_patch(BG, OBJ) if t >= 5 else BG, 15, SceneChangeStage(cfg(), ignore=polygons))
    assert not any(len(o.regions) for _, o in dropped)
    elsewhere = build_ignore(parse_site_config(_site([CLOCK])).cameras[0].ignore)
    found = run(lambda t: with_patch(BG, OBJ) if t >= 5 else BG, 15, SceneChangeStage(cfg(), ignore=elsewhere))
    assert len(found[-1][1].regions) == 1


def test_a_car_parked_inside_an_ignore_mask_is_never_an_incident() -> None:
    def incidents(ignore: list[dict]) -> list[str]:  # type: ignore[type-arg]
        camera = parse_site_config(_site(ignore)).cameras[0]
        detector = FakeDetector.from_boxes([[(150, 95, 180, 125, "car", 0.9)]], when_exhausted="repeat_last")
        pipe = CameraPipeline("s", "g", camera, detector)
        types: list[str] = []
        for i in range(20):
            ts = i * 0.5
            result = pipe.process(Frame("c", i, ts, T0 + timedelta(seconds=ts), BG))
            assert result is not None
            types += [u.type for u in result.updates if u.phase == "started"]
        return types

    assert incidents([]) == ["illegal_parking"]  # the same car without the mask is reported
    assert incidents([OVER_OBJ]) == []


def _site(ignore: list[dict]) -> dict:  # type: ignore[type-arg]
    return {"site_id": "s", "gateway_id": "g", "detector": {"type": "onnx", "model": "m.onnx"},
            "cameras": [{"id": "c", "analysis_fps": 2, "source": {"type": "file", "path": "x.mp4"},
                         "ignore": ignore, "incidents": {"illegal_parking": {"dwell_s": 3.0}}}]}
