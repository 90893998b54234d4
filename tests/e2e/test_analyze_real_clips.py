"""`analyze` on real street footage with the real COCO YOLOX-Nano (ONNX Runtime): the accuracy regression."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import yaml

from gridwatch.edge.analyze import analyze_clip
from gridwatch.edge.config import SiteConfig, parse_site_config
from gridwatch.pipelines.lifecycle import box_iou
from gridwatch.wire.events import IncidentEvent
from tests.conftest import FIXTURES, load_fixture_config
from tests.e2e.videos import assert_review_video

pytestmark = pytest.mark.realdata


def _started(events: list[IncidentEvent]) -> list[IncidentEvent]:
    return [e for e in events if e.phase == "started"]


def test_arlington_kerb_cars_become_illegal_parking(shared_data: Path, tmp_path: Path) -> None:
    cfg = load_fixture_config("arlington.yaml", shared_data)
    cam = cfg.cameras[0]
    report = analyze_clip(Path(cam.source.path), cfg, cam.id, tmp_path, progress=False)  # type: ignore[union-attr]
    started = _started(report.events)
    truth = json.loads((shared_data / "events.json").read_text())
    kerb_boxes = truth["videos/arlington_crystal_dr_curb_parked.avi"]["events"][0][
        "stationary_vehicle_bboxes_xyxy_approx"
    ]
    boxes = [(e.box.x1, e.box.y1, e.box.x2, e.box.y2) for e in started]
    for kb in kerb_boxes:
        best = max((box_iou(tuple(kb), b) for b in boxes), default=0.0)  # type: ignore[arg-type]
        assert best >= 0.3, f"kerb car {kb} has no illegal_parking incident (best IoU {best:.2f}); got {boxes}"
    # Only the kerb row: at most the annotated cars plus the two other cars parked in it.
    assert len(started) <= len(kerb_boxes) + 2, f"too many incidents: {boxes}"
    for e in started:
        assert e.type == "illegal_parking" and e.zone == "left_kerb"
        assert e.dwell_s >= 3.0
        assert e.started_at < e.observed_at
    # One incident per car: every started incident ends exactly once (flushed at the end of the clip).
    ended = [e.incident_id for e in report.events if e.phase == "ended"]
    assert sorted(ended) == sorted(e.incident_id for e in started)
    clip = cv2.VideoCapture(str(cam.source.path))  # type: ignore[union-attr]
    width, height = int(clip.get(cv2.CAP_PROP_FRAME_WIDTH)), int(clip.get(cv2.CAP_PROP_FRAME_HEIGHT))
    clip.release()
    assert report.end_reason == "source_ended"
    assert report.frames_expected is not None and abs(report.frames_decoded - report.frames_expected) <= 1
    assert_review_video(tmp_path / "annotated.mp4", report.frames_analysed, width, height)
    for e in started:
        assert (tmp_path / "snapshots" / f"{e.incident_id}.jpg").exists()
    lines = (tmp_path / "incidents.jsonl").read_text().splitlines()
    assert [IncidentEvent.from_json(line) for line in lines] == report.events


def test_moving_highway_traffic_is_not_parking(shared_data: Path, tmp_path: Path) -> None:
    cfg = load_fixture_config("negative.yaml", shared_data)
    cam = cfg.cameras[0]
    report = analyze_clip(Path(cam.source.path), cfg, cam.id, tmp_path, progress=False,  # type: ignore[union-attr]
                          write_video=False)
    assert report.frames_analysed > 100
    assert report.events == []


def _whole_frame(name: str, shared: Path, clip: str | None = None, fps: float | None = None) -> SiteConfig:
    """The fixture's camera with illegal_parking, littering and exposed_garbage over the whole frame (no zones:
    the default), only `dwell_s` set. (Littering and exposed garbage see scene-change regions once the edge
    emits them; YOLOX-Nano has no litter class.) `fps` replaces the fixture's analysis rate."""
    raw = yaml.safe_load((FIXTURES / name).read_text().replace("${SHARED}", str(shared)))
    cam = raw["cameras"][0]
    if fps is not None:
        cam["analysis_fps"] = fps
    if clip is not None:
        cam["source"]["path"] = str(shared / "videos" / clip)
    cam.pop("zones", None)
    cam["incidents"] = {"illegal_parking": {"dwell_s": 3.0}, "littering": {"dwell_s": 2.0},
                        "exposed_garbage": {"dwell_s": 5.0}}
    return parse_site_config(raw, name, base=FIXTURES)


def _analyze(cfg: SiteConfig, out: Path) -> list[IncidentEvent]:
    cam = cfg.cameras[0]
    report = analyze_clip(Path(cam.source.path), cfg, cam.id, out, progress=False,  # type: ignore[union-attr]
                          write_video=False)
    assert report.frames_analysed > 30
    return report.events


@pytest.mark.parametrize("fixture, clip, fps", [
    # An overhead gantry sign (box cut by the top of the frame) and a second sign YOLOX-Nano calls a bus/car
    # (median score 0.39) stand still for the whole clip; before the plausibility filter both became cases.
    ("negative.yaml", None, None),
    # At 2 fps (the incident benchmark's rate) the foliage in the top-right corner darkens and brightens again
    # over ~10 s as the light changes; before static foreground had to arrive (moving -> static) it became an
    # exposed_garbage incident (5 s dwell) at 17.5 s.
    ("negative.yaml", None, 2.0),
    ("negative.yaml", "intel_car-detection_lot_aisle_negative.mp4", None),
    ("negative.yaml", "intel_car-detection_lot_aisle_negative.mp4", 2.0),
])
def test_negative_clips_report_nothing_with_parking_over_the_whole_frame(
    shared_data: Path, tmp_path: Path, fixture: str, clip: str | None, fps: float | None
) -> None:
    events = _analyze(_whole_frame(fixture, shared_data, clip, fps), tmp_path)
    assert [(e.type, e.box) for e in _started(events)] == []


def test_arlington_kerb_cars_are_found_with_parking_over_the_whole_frame(shared_data: Path, tmp_path: Path) -> None:
    events = _analyze(_whole_frame("arlington.yaml", shared_data), tmp_path)
    started = _started(events)
    truth = json.loads((shared_data / "events.json").read_text())
    kerb_boxes = truth["videos/arlington_crystal_dr_curb_parked.avi"]["events"][0][
        "stationary_vehicle_bboxes_xyxy_approx"
    ]
    boxes = [(e.box.x1, e.box.y1, e.box.x2, e.box.y2) for e in started]
    for kb in kerb_boxes:
        best = max((box_iou(tuple(kb), b) for b in boxes), default=0.0)  # type: ignore[arg-type]
        assert best >= 0.3, f"kerb car {kb} lost by the plausibility filter (best IoU {best:.2f}); got {boxes}"
    assert {e.type for e in started} == {"illegal_parking"}
    ended = [e.incident_id for e in events if e.phase == "ended"]
    assert sorted(ended) == sorted(e.incident_id for e in started)
