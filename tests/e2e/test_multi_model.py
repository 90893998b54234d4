"""Two real ONNX models on one camera, each at its own rate, on a real clip through `gridwatch analyze`.

YOLOX-Nano (COCO) runs on every analysed frame; the demo model (synthetic world: on this clip it calls kerb cars
and background `stall`) runs every 2 s, its `car`/`person` renamed so they stay apart from COCO's. Parking comes
from COCO's cars, the vendor rule from the demo model's stalls, and each event names the model that found it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import supervision as sv
import yaml

from gridwatch.app.cli import main
from gridwatch.edge.analyze import analyze_clip
from gridwatch.edge.config import load_site_config
from gridwatch.edge.detectors import load_detectors
from gridwatch.models.base import Detector
from gridwatch.pipelines.lifecycle import box_iou
from gridwatch.wire.events import IncidentEvent

pytestmark = pytest.mark.realdata

REPO = Path(__file__).resolve().parents[2]
CLIP = "videos/arlington_crystal_dr_curb_parked.avi"


def write_config(shared: Path, tmp_path: Path) -> Path:
    cfg: dict[str, Any] = {
        "site_id": "arlington", "gateway_id": "gw-test",
        "detectors": {
            "coco": {"type": "onnx", "model": str(shared / "models" / "yolox_nano.onnx"),
                     "manifest": str(REPO / "models" / "manifests" / "yolox_nano_coco80.json"), "conf": 0.3,
                     "threads": 1},
            "demo": {"type": "onnx", "model": str(REPO / "models" / "demo" / "gridwatch-demo-yolo11n.onnx"),
                     "conf": 0.3, "threads": 1, "rename": {"car": "demo_car", "person": "demo_person"}},
        },
        "cameras": [{
            "id": "crystal-dr",
            "source": {"type": "file", "path": str(shared / CLIP)},
            "analysis_fps": 5,
            "detectors": ["coco", {"name": "demo", "every_s": 2}],
            "scene_change": {"enabled": False},
            "zones": [{"name": "left_kerb", "points": [[0, 576], [0, 300], [300, 130], [345, 130], [240, 300],
                                                        [120, 480], [80, 576]]}],
            "incidents": {
                "illegal_parking": {"zones": ["left_kerb"], "dwell_s": 3.0, "classes": ["car", "truck", "bus"]},
                "street_vendor": {"dwell_s": 3.0, "classes": ["stall"], "goods_classes": []},
            },
        }],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_analyze_runs_two_models_and_each_event_names_its_model(shared_data: Path, tmp_path: Path) -> None:
    config = write_config(shared_data, tmp_path)
    out = tmp_path / "out"
    code = main(["analyze", str(shared_data / CLIP), "--config", str(config), "--camera", "crystal-dr",
                 "--out", str(out), "--start-at", "2026-11-30T08:00:00Z", "--quiet"])
    assert code == 0
    events = [IncidentEvent.from_json(line) for line in (out / "incidents.jsonl").read_text().splitlines()]
    started = [e for e in events if e.phase == "started"]
    parking = [e for e in started if e.type == "illegal_parking"]
    vendors = [e for e in started if e.type == "street_vendor"]
    assert {(e.model.name, e.objects[0].class_name) for e in parking} == {("yolox-nano-coco80", "car")}
    assert vendors and {(e.model.name, e.objects[0].class_name) for e in vendors} == {
        ("gridwatch-demo-yolo11n", "stall")}
    # the annotated kerb cars are all found, by COCO's `car` (the demo model's cars are `demo_car`: kept apart)
    truth = json.loads((shared_data / "events.json").read_text())
    kerb_boxes = truth[CLIP]["events"][0]["stationary_vehicle_bboxes_xyxy_approx"]
    boxes = [(e.box.x1, e.box.y1, e.box.x2, e.box.y2) for e in parking]
    for kb in kerb_boxes:
        assert max(box_iou(tuple(kb), b) for b in boxes) >= 0.3, (kb, boxes)  # type: ignore[arg-type]
    assert len(parking) <= len(kerb_boxes) + 2
    assert sorted(e.incident_id for e in events if e.phase == "ended") == sorted(e.incident_id for e in started)


class Counting:
    """A real detector that counts its calls and remembers how many boxes each call found."""

    def __init__(self, inner: Detector) -> None:
        self.inner, self.info = inner, inner.info
        self.found: list[int] = []

    def detect(self, image: np.ndarray) -> sv.Detections:
        result = self.inner.detect(image)
        self.found.append(len(result))
        return result


def test_the_slow_model_runs_every_2_s_and_its_boxes_stay_between_runs(shared_data: Path, tmp_path: Path) -> None:
    cfg = load_site_config(write_config(shared_data, tmp_path))
    loaded = {name: Counting(det) for name, det in load_detectors(cfg).items()}
    report = analyze_clip(shared_data / CLIP, cfg, "crystal-dr", tmp_path / "out", detector=loaded, progress=False,
                          write_video=False)
    frames = report.frames_analysed
    assert len(loaded["coco"].found) == frames
    assert len(loaded["demo"].found) == -(-frames // 10)  # one run per 2 s = per 10 analysed frames at 5 fps
    assert sum(loaded["demo"].found) > 0  # persistence between runs: tests/edge/test_detectors.py


def test_each_cameras_classes_are_checked_against_its_own_detectors(shared_data: Path, tmp_path: Path) -> None:
    from gridwatch.edge.config import parse_site_config
    from gridwatch.models.base import ModelConfigError

    data = yaml.safe_load(write_config(shared_data, tmp_path).read_text())
    data["cameras"][0]["detectors"] = ["coco"]  # the stalls are the demo model's: this camera cannot see them
    with pytest.raises(ModelConfigError, match=r"cameras\.0\.incidents\.street_vendor\.classes: 'stall' is not a "
                                               r"class of model yolox-nano-coco80"):
        load_detectors(parse_site_config(data))
    data["cameras"][0]["detectors"] = ["coco", "demo"]
    data["cameras"][0]["incidents"]["illegal_parking"]["classes"] = ["demo_car"]  # renamed: known under its new name
    assert set(load_detectors(parse_site_config(data))) == {"coco", "demo"}
    data["detectors"]["demo"]["rename"] = {"cat": "x"}
    with pytest.raises(ModelConfigError, match=r"detectors\.demo\.rename\.cat: 'cat' is not a class of model "
                                               "gridwatch-demo-yolo11n"):
        load_detectors(parse_site_config(data))
    data["detectors"]["demo"]["rename"] = {"car": "stall"}
    with pytest.raises(ModelConfigError, match="two classes of model gridwatch-demo-yolo11n the name 'stall'"):
        load_detectors(parse_site_config(data))
