"""The shipped street model (models/street/): its manifest verifies, it loads through the edge's ONNX runtime, and
on real labelled photos it finds the overflowing bins and bins people labelled (a broken export or decoder finds
none). Its accuracy is measured by benchmarks/models.py, not here."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gridwatch.models.registry import OnnxDetectorSpec, load_detector

STREET = Path(__file__).resolve().parents[2] / "models" / "street" / "gridwatch-street-yolo11n.onnx"


def labelled(folder: Path, n: int) -> list[tuple[np.ndarray, list[tuple[int, np.ndarray]]]]:
    """The first `n` val photos with their YOLO boxes in pixels."""
    out = []
    for image in sorted((folder / "images").glob("*.jpg"))[:n]:
        frame = cv2.imread(str(image))
        h, w = frame.shape[:2]
        boxes = []
        for line in (folder / "labels" / f"{image.stem}.txt").read_text().split("\n"):
            if line.strip():
                c, cx, cy, bw, bh = (float(v) for v in line.split())
                boxes.append((int(c), np.array([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w,
                                                (cy + bh / 2) * h])))
        out.append((frame, boxes))
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


def test_the_street_model_loads_verified_and_finds_labelled_bins(shared_data: Path) -> None:
    detector = load_detector(OnnxDetectorSpec(type="onnx", model=STREET, conf=0.25, verify_sha256=True))
    assert list(detector.info.class_names) == ["garbage", "garbage_bin", "overflow"]
    found = total = 0
    for frame, truth in labelled(shared_data / "garbage_cn_street" / "val", 30):
        dets = detector.detect(frame)
        names = dets.data["class_name"]
        for cls, box in truth:
            if cls not in (1, 2):  # garbage_bin, overflow: the well-defined classes
                continue
            total += 1
            want = ("garbage_bin", "overflow")[cls - 1]
            found += any(names[i] == want and iou(dets.xyxy[i], box) >= 0.5 for i in range(len(dets)))
    assert total >= 20
    assert found / total >= 0.5, f"{found} of {total} labelled bins/overflows found"


def test_a_tampered_street_model_is_refused(tmp_path: Path) -> None:
    from gridwatch.models.base import ModelError

    bad = tmp_path / STREET.name
    data = bytearray(STREET.read_bytes())
    data[-100] ^= 0xFF
    bad.write_bytes(bytes(data))
    (tmp_path / STREET.with_suffix(".json").name).write_bytes(STREET.with_suffix(".json").read_bytes())
    with pytest.raises(ModelError, match="sha256"):
        load_detector(OnnxDetectorSpec(type="onnx", model=bad, verify_sha256=True))


@pytest.mark.parametrize("mode", ["flip", "multiscale"])
def test_tta_on_the_street_model_is_one_batch_of_all_views_equal_to_separate_runs(shared_data: Path,
                                                                                   mode: str) -> None:
    """The shipped export's dynamic batch really is a batch: each view's row of one batched run gives the boxes a
    run on that view alone gives, so `tta: flip` / `multiscale` costs one network call and changes nothing but
    the speed."""
    from gridwatch.models.onnx_backend import OnnxDetector
    from gridwatch.models.tta import TtaDetector, merge_views, view_back, view_of
    from tests.models.test_tta import counting

    detector = load_detector(OnnxDetectorSpec(type="onnx", model=STREET, conf=0.25, tta=mode))
    assert isinstance(detector, TtaDetector) and isinstance(detector.inner, OnnxDetector)
    (frame, _), = labelled(shared_data / "garbage_cn_street" / "val", 1)
    frame = cv2.resize(frame, (640, 360))
    inner = detector.inner
    separate = merge_views([view_back(inner.detect(shown), v, placed, (640, 360))
                            for v in detector.views for shown, placed in [view_of(frame, v)]], 0.45)
    session = counting(inner)
    batched = detector.detect(frame)
    assert session.shapes == [(len(detector.views), 3, 384, 384)]
    assert len(batched) == len(separate) > 0
    np.testing.assert_allclose(batched.xyxy, separate.xyxy, atol=0.05)
    assert batched.data["class_name"].tolist() == separate.data["class_name"].tolist()
