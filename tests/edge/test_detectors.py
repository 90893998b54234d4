"""Several detectors per camera, each at its own rate (`gridwatch.edge.detectors`), with scripted fake detectors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from gridwatch.edge.camera import CameraPipeline
from gridwatch.edge.config import ConfigError, parse_site_config
from gridwatch.edge.detectors import CameraDetectors, camera_detectors
from gridwatch.edge.frames import Frame
from gridwatch.models.base import ModelInfo
from gridwatch.models.fake import FakeDetector
from gridwatch.models.rename import RenamedDetector

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
COCO = ("person", "car")
STREET = ("garbage", "garbage_bin", "overflow", "person")


def site(**camera: Any) -> dict[str, Any]:
    return {
        "site_id": "s1", "gateway_id": "gw1",
        "detectors": {"coco": {"type": "onnx", "model": "coco.onnx"},
                      "street": {"type": "onnx", "model": "street.onnx"}},
        "cameras": [{"id": "cam1", "source": {"type": "file", "path": "clip.mp4"}, "analysis_fps": 5, **camera}],
    }


def named(detector: FakeDetector, name: str) -> FakeDetector:
    detector.info = ModelInfo(name, "1", name[0] * 64 if name[0] in "abcdef" else "a" * 64,
                              detector.info.class_names, (640, 640), "fake")
    return detector


def coco(frames: list[list[tuple[float, float, float, float, str, float]]]) -> FakeDetector:
    return named(FakeDetector.from_boxes(frames, COCO, when_exhausted="repeat_last"), "coco-model")


def street(frames: list[list[tuple[float, float, float, float, str, float]]]) -> FakeDetector:
    return named(FakeDetector.from_boxes(frames, STREET, when_exhausted="repeat_last"), "street-model")


def image() -> np.ndarray:
    return np.zeros((360, 640, 3), np.uint8)


# --- config --------------------------------------------------------------------------------------------------
def test_camera_picks_its_detectors_with_rates_and_a_name_alone_means_every_frame() -> None:
    cfg = parse_site_config(site(detectors=["coco", {"name": "street", "every_s": 5}]))
    assert [(d.name, d.every_s) for d in cfg.camera_detectors(cfg.cameras[0])] == [("coco", 0.0), ("street", 5.0)]


def test_a_camera_without_detectors_runs_every_detector_of_the_site_and_detector_is_the_default() -> None:
    data = site()
    data["detector"] = {"type": "onnx", "model": "main.onnx"}
    cfg = parse_site_config(data)
    assert [(d.name, d.every_s) for d in cfg.camera_detectors(cfg.cameras[0])] == [
        ("default", 0.0), ("coco", 0.0), ("street", 0.0)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"camera": {"detectors": ["coco", "stret"]}},
         "cameras.0.detectors.1.name: detector 'stret' is not defined; define it under `detectors:` or use one of "
         "['coco', 'street']"),
        ({"camera": {"detectors": ["coco", "coco"]}}, "cameras.0.detectors.1.name: detector 'coco' is listed twice"),
        ({"camera": {"detectors": [{"name": "street", "every_s": -1}]}},
         "cameras.0.detectors.0.every_s: Input should be greater than or equal to 0"),
        ({"camera": {"detectors": [{"name": "street", "evry_s": 5}]}}, "cameras.0.detectors.0.evry_s: unknown field"),
        ({"camera": {"detectors": ["default"]}}, "detector 'default' is not defined; define it as the `detector:` "
         "section"),
        ({"site": {"detectors": {}}}, "detector: required field is missing; add a `detector:` section"),
        ({"site": {"detector": {"type": "onnx", "model": "m.onnx"},
                   "detectors": {"default": {"type": "onnx", "model": "n.onnx"}}}},
         "detectors.default: the name 'default' is the `detector:` section's"),
        ({"site": {"detectors": {"street": {"type": "onnx", "model": "s.onnx", "rename": "x"}}}},
         "detectors.street.rename: Input should be a valid dictionary"),
    ],
    ids=["unknown", "twice", "negative-rate", "typo", "no-default", "none", "default-twice", "bad-rename"],
)
def test_detector_config_errors_name_the_path_and_the_fix(change: dict[str, Any], message: str) -> None:
    data = site(**change.get("camera", {}))
    data.update(change.get("site", {}))
    with pytest.raises(ConfigError) as err:
        parse_site_config(data)
    assert message in str(err.value)


# --- scheduling ----------------------------------------------------------------------------------------------
def test_a_slow_detector_runs_at_its_rate_and_its_detections_persist_with_their_age() -> None:
    fast = coco([[(10, 10, 50, 90, "person", 0.9)]])
    slow = street([[(200, 200, 260, 260, "garbage", 0.7)], [(202, 200, 262, 260, "garbage", 0.8)]])
    dets = CameraDetectors([("coco", fast, 0.0), ("street", slow, 2.0)], analysis_fps=5)
    times = [i / 5 for i in range(16)]  # 0 .. 3.0 s
    out = [dets.detect(image(), t) for t in times]
    assert len(fast.calls) == 16 and len(slow.calls) == 2  # at 0 s and 2 s
    for t, found in zip(times, out, strict=True):
        names = list(found.data["class_name"])
        assert names == ["person", "garbage"], (t, names)
        age = dict(zip(found.data["detector"], found.data["detection_age_s"], strict=True))
        assert age["coco"] == 0.0
        assert age["street"] == pytest.approx(t if t < 2 else t - 2)
        garbage = found.xyxy[1]
        assert garbage[0] == (200 if t < 2 else 202)  # the last run's box until the next run
    assert list(out[0].class_id) == [0, 2]  # ids index the camera's class union: person, car, garbage, ...
    assert dets.class_names == ("person", "car", "garbage", "garbage_bin", "overflow")


def test_a_rate_is_kept_when_capture_timestamps_jitter() -> None:
    slow = street([[]])
    dets = CameraDetectors([("street", slow, 1.0)], analysis_fps=5)
    for t in (0.0, 0.21, 0.39, 0.61, 0.8, 0.99, 1.2, 1.41, 1.6, 1.8, 1.98):
        dets.detect(image(), t)
    assert len(slow.calls) == 3  # 0.0, 0.99 (within half a frame gap of 1 s), 1.98


def test_the_same_class_from_two_detectors_is_one_object_and_the_fresher_box_wins() -> None:
    fast = coco([[(10, 10, 50, 90, "person", 0.6)], [(12, 10, 52, 90, "person", 0.6)]])
    slow = street([[(11, 10, 51, 90, "person", 0.95), (300, 10, 340, 90, "person", 0.9)]])
    dets = CameraDetectors([("coco", fast, 0.0), ("street", slow, 10.0)], analysis_fps=5)
    first = dets.detect(image(), 0.0)  # both fresh: the more confident street box wins, the lone one stays
    assert sorted(zip(first.data["detector"], first.xyxy[:, 0].tolist(), strict=True)) == [
        ("street", 11.0), ("street", 300.0)]
    second = dets.detect(image(), 0.2)  # the street boxes are 0.2 s old now: coco's fresh box wins
    assert sorted(zip(second.data["detector"], second.xyxy[:, 0].tolist(), strict=True)) == [
        ("coco", 12.0), ("street", 300.0)]


def test_renaming_keeps_a_class_apart() -> None:
    fast = coco([[(10, 10, 50, 90, "person", 0.6)]])
    slow = RenamedDetector(street([[(11, 10, 51, 90, "person", 0.95)]]), {"person": "street_person"})
    dets = CameraDetectors([("coco", fast, 0.0), ("street", slow, 0.0)], analysis_fps=5)
    found = dets.detect(image(), 0.0)
    assert sorted(found.data["class_name"]) == ["person", "street_person"]
    assert "street_person" in dets.class_names and dets.model_for("street_person").name == "street-model"
    assert dets.model_for("person").name == "coco-model"  # the first detector that has it


def test_one_detector_given_to_a_camera_that_lists_two_is_an_error() -> None:
    cfg = parse_site_config(site(detectors=["coco", "street"]))
    with pytest.raises(ConfigError, match="pass them all by name"):
        camera_detectors(cfg.cameras[0], coco([[]]))
    with pytest.raises(ConfigError, match=r"\['street'\], which were not loaded"):
        camera_detectors(cfg.cameras[0], {"coco": coco([[]])})


# --- through the camera pipeline -----------------------------------------------------------------------------
def test_pipeline_tracks_a_slow_models_detection_as_one_track_and_events_name_its_model() -> None:
    cfg = parse_site_config(site(
        detectors=["coco", {"name": "street", "every_s": 3}],
        incidents={"exposed_garbage": {"dwell_s": 4, "end_after_s": 2, "classes": ["garbage"]}},
        scene_change={"enabled": False},
    ))
    fast = coco([[(10, 10, 50, 90, "person", 0.9)]])
    # the street model sees the garbage on its first three runs (0, 3, 6 s), then no more
    slow = street([[(300, 200, 360, 250, "garbage", 0.8)]] * 3 + [[]])
    pipe = CameraPipeline("s1", "gw1", cfg.cameras[0], {"coco": fast, "street": slow})
    events, track_ids, emitted_at = [], set(), {}
    for i in range(60):  # 12 s at 5 fps
        frame = Frame("cam1", i, i / 5, T0 + timedelta(seconds=i / 5), image())
        result = pipe.process(frame)
        assert result is not None
        names = list(result.tracks.data["class_name"])
        if "garbage" in names:
            track_ids.add(int(result.tracks.tracker_id[names.index("garbage")]))  # type: ignore[index]
        events += [e.event for e in result.emitted]
        emitted_at.update({(e.event.phase, e.event.incident_id): frame.ts for e in result.emitted})
    assert len(slow.calls) == 4  # 0, 3, 6, 9 s
    assert len(track_ids) == 1  # seen on every frame from 0 to 9 s: one track, never lost between runs
    started = [e for e in events if e.phase == "started"]
    assert [(e.type, e.model.name) for e in started] == [("exposed_garbage", "street-model")]
    assert started[0].observed_at.timestamp() - T0.timestamp() == pytest.approx(4.0, abs=0.25)
    ended = [e for e in events if e.phase == "ended"]
    # last seen on the frame before the 9 s run (8.8 s: persisted until then), reported gone 2 s later
    assert [e.end_reason for e in ended] == ["gone"]
    assert ended[0].ended_at is not None
    assert ended[0].ended_at.timestamp() - T0.timestamp() == pytest.approx(8.8, abs=0.01)
    assert emitted_at[("ended", ended[0].incident_id)] == pytest.approx(10.8, abs=0.25)
