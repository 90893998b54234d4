"""The scene-change stage inside `CameraPipeline`: when it runs, and how its regions reach tracks and rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from gridwatch.edge.camera import CameraPipeline, FrameResult
from gridwatch.edge.config import ConfigError, SiteConfig, parse_site_config, scene_change_enabled
from gridwatch.edge.frames import Frame
from gridwatch.edge.scene.stage import REGION_CLASS
from gridwatch.models.classes import NOT_FROM_THE_MODEL
from gridwatch.models.fake import FakeDetector
from tests.edge.scene.test_stage import BG, OBJ, with_patch

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def site(incidents: dict[str, Any], scene: dict[str, Any] | None = None) -> SiteConfig:
    camera: dict[str, Any] = {
        "id": "cam1", "analysis_fps": 2, "source": {"type": "file", "path": "clip.mp4"},
        "zones": [{"name": "walk", "points": [[0, 0], [320, 0], [320, 180], [0, 180]]}],
        "incidents": incidents,
    }
    if scene is not None:
        camera["scene_change"] = scene
    return parse_site_config({"site_id": "s1", "gateway_id": "gw1", "detector": {"type": "onnx", "model": "x.onnx"},
                              "cameras": [camera]})


@pytest.mark.parametrize(("incidents", "scene", "on"), [
    ({"littering": {"dwell_s": 2}}, None, True),
    ({"exposed_garbage": {"dwell_s": 2}}, None, True),
    ({"fallen_wire": {"dwell_s": 2}}, None, True),
    ({"street_vendor": {"dwell_s": 2}}, None, True),
    ({"illegal_parking": {"dwell_s": 2}}, None, False),
    ({"littering": {"dwell_s": 2, "enabled": False}}, None, False),
    ({"illegal_parking": {"dwell_s": 2}}, {"enabled": True}, True),
    ({"littering": {"dwell_s": 2}}, {"enabled": False}, False),
])
def test_auto_runs_the_stage_when_an_incident_type_wants_regions(
    incidents: dict[str, Any], scene: dict[str, Any] | None, on: bool,
) -> None:
    assert scene_change_enabled(site(incidents, scene).cameras[0]) is on


def test_knobs_are_bounded_and_named_in_errors() -> None:
    with pytest.raises(ConfigError, match=r"scene_change\.min_static_s"):
        site({"littering": {}}, {"min_static_s": 0})


def run(cfg: SiteConfig, detector: FakeDetector, seconds: float) -> list[FrameResult]:
    pipe = CameraPipeline("s1", "gw1", cfg.cameras[0], detector)
    out = []
    for i in range(int(seconds * 2)):
        t = i / 2
        image = with_patch(BG, OBJ) if t >= 2 else BG
        result = pipe.process(Frame("cam1", i, t, T0 + timedelta(seconds=t), image))
        assert result is not None
        out.append(result)
    return out


def test_regions_become_tracks_and_reach_the_rules() -> None:
    cfg = site({"exposed_garbage": {"dwell_s": 2.0, "classes": ["unknown_object"]}},
               {"work_width": 320, "min_static_s": 2.0})
    results = run(cfg, FakeDetector([]), 12)
    assert all(r.scene is not None and not r.scene.paused for r in results)
    tracked = [r for r in results if "unknown_object" in list(r.tracks.data.get("class_name", []))]
    assert tracked, "the region never became a track"
    assert len({int(t) for r in tracked for t in r.tracks.tracker_id}) == 1  # one object, one track
    started = [e.event for r in results for e in r.emitted if e.event.phase == "started"]
    assert [e.type for e in started] == ["exposed_garbage"]
    box = started[0].box
    assert abs((box.x1 + box.x2) / 2 - 165) <= 5 and abs((box.y1 + box.y2) / 2 - 112.5) <= 5
    assert started[0].objects[0].class_name == "unknown_object"


def test_a_tracked_person_on_the_spot_is_never_a_region() -> None:
    cfg = site({"exposed_garbage": {"dwell_s": 2.0, "classes": ["unknown_object"]}},
               {"work_width": 320, "min_static_s": 2.0})
    person = [(OBJ[0] - 2, OBJ[1] - 40, OBJ[2] + 2, OBJ[3] + 2, "person", 0.9)]
    results = run(cfg, FakeDetector.from_boxes([person], when_exhausted="repeat_last"), 12)
    assert not any(r.scene is not None and len(r.scene.regions) for r in results)
    assert not any(r.emitted for r in results)


def test_without_the_stage_nothing_changes() -> None:
    cfg = site({"illegal_parking": {"dwell_s": 2.0}})
    results = run(cfg, FakeDetector([]), 6)
    assert all(r.scene is None and len(r.tracks) == 0 for r in results)


def test_the_region_class_is_one_the_class_check_accepts_beside_any_model() -> None:
    assert REGION_CLASS in NOT_FROM_THE_MODEL


def test_the_review_video_draws_regions_in_their_own_colour() -> None:
    import numpy as np
    import supervision as sv

    from gridwatch.edge.evidence import annotate

    image = np.zeros((60, 80, 3), np.uint8)
    region = sv.Detections(xyxy=np.array([[20, 20, 50, 45]], np.float32))
    plain = annotate(image, sv.Detections.empty(), (), ())
    drawn = annotate(image, sv.Detections.empty(), (), (), regions=region)
    assert not plain.any()
    assert tuple(int(v) for v in drawn[20, 20]) == (255, 0, 255)  # BGR magenta at the box corner
    assert not drawn[32, 35].any()  # corners only: the object stays visible


def test_the_review_video_draws_a_tracked_region_dashed_and_labelled_region() -> None:
    import numpy as np
    import supervision as sv

    from gridwatch.edge.evidence import annotate

    image = np.zeros((120, 160, 3), np.uint8)
    tracked = sv.Detections(xyxy=np.array([[40, 60, 120, 100]], np.float32), tracker_id=np.array([7]),
                            data={"class_name": np.array([REGION_CLASS])})
    drawn = annotate(image, tracked, (), ())
    edge = drawn[100, 40:121]  # the bottom edge, left to right
    magenta = (edge[:, 2] > 200) & (edge[:, 0] > 200) & (edge[:, 1] < 60)
    assert 0.3 < magenta.mean() < 0.8, "dashed: magenta dashes with gaps between them"
    label = drawn[35:60, 40:120]  # the `#7 region` label sits on top of the box, on magenta
    assert ((label[..., 2] > 200) & (label[..., 0] > 200) & (label[..., 1] < 60)).sum() > 100
    car = sv.Detections(xyxy=np.array([[40, 60, 120, 100]], np.float32), tracker_id=np.array([7]),
                        data={"class_name": np.array(["car"])})
    solid = annotate(image, car, (), ())[100, 40:121]
    assert not ((solid[:, 2] > 200) & (solid[:, 0] > 200) & (solid[:, 1] < 60)).any(), "a detector track is not magenta"


def test_the_snapshot_labels_a_region_subject_whole_even_at_the_right_edge() -> None:
    import cv2
    import numpy as np

    from gridwatch.edge.evidence import snapshot
    from gridwatch.pipelines.types import IncidentUpdate, ObjectRef

    box = (600.0, 60.0, 639.0, 110.0)
    region = ObjectRef(3, REGION_CLASS, 0.9, "subject", box, 0.5)
    upd = IncidentUpdate("cam1-exposed_garbage-1", "exposed_garbage", "started", 0, None, 1.0, 6.0, 5.0, 0.9, box,
                         (619.5, 105.0), None, objects=(region,))
    image = cv2.imdecode(np.frombuffer(snapshot(np.zeros((360, 640, 3), np.uint8), upd).jpeg, np.uint8),
                         cv2.IMREAD_COLOR)
    row = image[52, :]  # through the label drawn above the box
    red = (row[:, 2] > 150) & (row[:, 1] < 80) & (row[:, 0] < 80)
    reds = np.nonzero(red)[0]
    assert reds.size and reds.min() < 560 and reds.max() >= 630, "the label moved left to stay whole"
