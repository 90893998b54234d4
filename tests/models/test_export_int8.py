"""Export steps that need no torch: fixing a dynamic export's W x H, and INT8 quantisation of a real YOLO11 graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gridwatch.models.export import fix_input_size
from gridwatch.models.manifest import load_manifest
from gridwatch.models.onnx_backend import OnnxDetector, file_sha256
from gridwatch.models.quantize import float_head_nodes, quantize_int8
from tests.models.conftest import DEMO_CLASSES, REPO, manifest_dict
from tests.models.test_rect_and_batch import build_batch_onnx, head

DEMO = REPO / "models" / "demo" / "gridwatch-demo-yolo11n.onnx"


def test_fix_input_size_keeps_only_the_batch_free(tmp_path: Path) -> None:
    n = (384 // 8) * (224 // 8) + (384 // 16) * (224 // 16) + (384 // 32) * (224 // 32)  # 2016 anchors
    raw = head([(192, 112, 96, 54, 0, 0.9)], n=n)
    free = build_batch_onnx(tmp_path / "free.onnx", raw, ("height", "width"))  # type: ignore[arg-type]
    fixed = fix_input_size(free, tmp_path / "fixed.onnx", (384, 224))
    manifest = manifest_dict(input_size=[384, 224], sha256=file_sha256(fixed))
    fixed.with_suffix(".json").write_text(json.dumps(manifest))
    det = OnnxDetector.from_path(fixed, conf_threshold=0.5)
    session = det._session
    assert session.get_inputs()[0].shape == ["batch", 3, 224, 384]
    assert session.get_outputs()[0].shape == ["batch", 4 + len(DEMO_CLASSES), n]
    out = det.detect_batch([np.zeros((720, 1280, 3), np.uint8)] * 3)
    assert [len(d) for d in out] == [1, 1, 1]


def _demo_frames(n: int) -> list[np.ndarray]:
    from gridwatch.synth.scenario import load_scenario
    from gridwatch.synth.scene import Scene

    scene = Scene.compile(load_scenario(REPO / "synth" / "scenarios" / "demo.yaml"))
    return [scene.frame_at(t, int(t * scene.scenario.fps)).image for t in np.linspace(5.0, 50.0, n)]


def test_int8_demo_model_keeps_its_detections(tmp_path: Path) -> None:
    import cv2
    import onnx

    assert float_head_nodes(DEMO), "the Ultralytics head (/model.23/) must be found and kept in float"
    frames = _demo_frames(6)
    calib = []
    for i, frame in enumerate(frames[:4]):
        path = tmp_path / f"calib{i}.jpg"
        cv2.imwrite(str(path), frame)
        calib.append(path)
    manifest = load_manifest(DEMO.with_suffix(".json"))
    q = quantize_int8(DEMO, tmp_path / "demo-int8.onnx", manifest, calib)
    ops = {node.op_type for node in onnx.load(str(q)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    q.with_suffix(".json").write_text(
        json.dumps(manifest.model_copy(update={"sha256": file_sha256(q)}).model_dump(mode="json")))
    assert q.stat().st_size < DEMO.stat().st_size / 2
    fp32 = OnnxDetector.from_path(DEMO, conf_threshold=0.4)
    int8 = OnnxDetector.from_path(q, conf_threshold=0.4)
    for frame in frames[4:]:  # frames it was not calibrated on
        a, b = fp32.detect(frame), int8.detect(frame)
        assert len(a) > 0
        # every confident float detection has an INT8 twin of the same class at IoU >= 0.7
        from gridwatch.models.detection_metrics import box_iou

        ious = box_iou(a.xyxy, b.xyxy)
        same = a.class_id[:, None] == b.class_id[None, :]
        strong = a.confidence > 0.6
        assert ((ious >= 0.7) & same).any(axis=1)[strong].all(), (a, b)


def test_int8_without_images_is_a_config_error(tmp_path: Path) -> None:
    from gridwatch.models.base import ModelConfigError

    with pytest.raises(ModelConfigError, match="calibration images"):
        quantize_int8(DEMO, tmp_path / "x.onnx", load_manifest(DEMO.with_suffix(".json")), [])
