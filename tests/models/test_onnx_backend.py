"""OnnxDetector through a real ONNX Runtime session on tiny graphs built with onnx.helper."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import supervision as sv

from gridwatch.models.base import Detector, ModelConfigError, ModelIntegrityError, ModelLoadError
from gridwatch.models.onnx_backend import OnnxDetector, choose_providers

ModelFactory = Callable[..., tuple[Path, Path]]
NC = 5  # car, person, litter, stall, wire


def ultralytics_output(boxes: Sequence[tuple[float, float, float, float, int, float]], n: int = 16) -> np.ndarray:
    """(1, 4+nc, n) YOLOv8/11 head output with one column per (cx, cy, w, h, class, score) in input pixels."""
    out = np.zeros((1, 4 + NC, n), dtype=np.float32)
    for j, (cx, cy, w, h, cls, score) in enumerate(boxes):
        out[0, :4, j] = (cx, cy, w, h)
        out[0, 4 + cls, j] = score
    return out


# Input 64x64, centre letterbox. A 200x100 image scales by 0.32 into 64x32 with pad_y = 16, so the input box
# cx=32 cy=32 w=32 h=16 (xyxy 16,24,48,40) is xyxy 50,25,150,75 in the image.
SCENE = [
    (32, 32, 32, 16, 0, 0.9),  # car -> (50, 25, 150, 75)
    (33, 32, 32, 16, 0, 0.6),  # same car again, weaker: removed by NMS
    (33, 32, 32, 16, 1, 0.7),  # person overlapping the car: kept (class-aware NMS)
    (10, 40, 8, 8, 2, 0.1),  # litter below the threshold: dropped
]


def test_ultralytics_decoder_end_to_end_through_onnxruntime(tiny_model: ModelFactory) -> None:
    onnx_path, _ = tiny_model(ultralytics_output(SCENE))
    detector = OnnxDetector.from_path(onnx_path, threads=1)  # manifest found as tiny.json beside the model
    image = np.full((100, 200, 3), 50, dtype=np.uint8)
    before = image.copy()

    det = detector.detect(image)

    assert isinstance(det, sv.Detections)
    assert det.xyxy.dtype == np.float32 and det.confidence is not None and det.class_id is not None
    assert det.class_id.tolist() == [0, 1]
    assert det.data["class_name"].tolist() == ["car", "person"]
    np.testing.assert_allclose(det.xyxy[0], [50, 25, 150, 75], atol=1e-3)
    np.testing.assert_allclose(det.confidence, [0.9, 0.7], atol=1e-6)
    np.testing.assert_array_equal(image, before)


def test_detector_info_and_protocol(tiny_model: ModelFactory) -> None:
    onnx_path, manifest_path = tiny_model(ultralytics_output(SCENE), name="demo", version="1.2.3")
    detector = OnnxDetector.from_path(onnx_path, manifest_path)
    manifest = json.loads(manifest_path.read_text())
    assert isinstance(detector, Detector)
    assert detector.info.name == "demo" and detector.info.version == "1.2.3"
    assert detector.info.sha256 == manifest["sha256"]
    assert detector.info.class_names == ("car", "person", "litter", "stall", "wire")
    assert detector.info.input_size == (64, 64) and detector.info.decoder == "ultralytics"
    assert detector.providers == ["CPUExecutionProvider"]


def test_class_filter_and_thresholds(tiny_model: ModelFactory) -> None:
    onnx_path, _ = tiny_model(ultralytics_output(SCENE))
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    only_people = OnnxDetector.from_path(onnx_path, class_filter=["person"])
    assert only_people.detect(image).data["class_name"].tolist() == ["person"]
    strict = OnnxDetector.from_path(onnx_path, conf_threshold=0.8)
    assert strict.detect(image).class_id.tolist() == [0]  # type: ignore[union-attr]
    lenient = OnnxDetector.from_path(onnx_path, conf_threshold=0.05, iou_threshold=0.99)
    assert len(lenient.detect(image)) == 4


def test_no_detections_has_the_same_shape(tiny_model: ModelFactory) -> None:
    onnx_path, _ = tiny_model(ultralytics_output([]))
    det = OnnxDetector.from_path(onnx_path).detect(np.zeros((48, 48, 3), dtype=np.uint8))
    assert len(det) == 0
    assert det.xyxy.shape == (0, 4) and det.xyxy.dtype == np.float32
    assert det.data["class_name"].shape == (0,)


def test_dynamic_input_dims_are_accepted(tiny_model: ModelFactory) -> None:
    onnx_path, _ = tiny_model(ultralytics_output(SCENE), input_hw=("height", "width"))
    det = OnnxDetector.from_path(onnx_path).detect(np.zeros((100, 200, 3), dtype=np.uint8))
    assert len(det) == 2


def test_half_precision_export(tiny_model: ModelFactory) -> None:
    onnx_path, _ = tiny_model(ultralytics_output(SCENE), fp16=True)
    det = OnnxDetector.from_path(onnx_path).detect(np.zeros((100, 200, 3), dtype=np.uint8))
    assert det.class_id.tolist() == [0, 1]  # type: ignore[union-attr]
    np.testing.assert_allclose(det.xyxy[0], [50, 25, 150, 75], atol=0.5)
    assert det.xyxy.dtype == np.float32 and det.confidence.dtype == np.float32  # type: ignore[union-attr]


def test_sha256_mismatch_names_expected_and_actual(tiny_model: ModelFactory) -> None:
    onnx_path, _ = tiny_model(ultralytics_output(SCENE), sha256="a" * 64)
    with pytest.raises(ModelIntegrityError) as err:
        OnnxDetector.from_path(onnx_path)
    assert "a" * 64 in str(err.value) and err.value.expected == "a" * 64
    assert err.value.actual in str(err.value) and err.value.actual != "a" * 64
    assert OnnxDetector.from_path(onnx_path, verify_sha256=False).info.sha256 == err.value.actual
    again = pickle.loads(pickle.dumps(err.value))
    assert (again.expected, again.actual, str(again)) == (
        err.value.expected,
        err.value.actual,
        str(err.value),
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"input_size": [96, 64]}, "input_size"),
        ({"classes": ["car", "person"]}, "2"),
        ({"decoder": "yolov5"}, "classes"),
    ],
)
def test_manifest_that_disagrees_with_the_model(
    tiny_model: ModelFactory, overrides: dict[str, Any], message: str
) -> None:
    onnx_path, _ = tiny_model(ultralytics_output(SCENE), **overrides)
    with pytest.raises(ModelConfigError, match=message):
        OnnxDetector.from_path(onnx_path)


def test_unknown_class_filter_lists_the_known_classes(tiny_model: ModelFactory) -> None:
    onnx_path, _ = tiny_model(ultralytics_output(SCENE))
    with pytest.raises(ModelConfigError, match=r"'bus'.*'litter'"):
        OnnxDetector.from_path(onnx_path, class_filter=["bus"])


def test_missing_files(tmp_path: Path, tiny_model: ModelFactory) -> None:
    with pytest.raises(ModelConfigError, match="no manifest"):
        OnnxDetector.from_path(tmp_path / "nothing.onnx")
    onnx_path, manifest_path = tiny_model(ultralytics_output(SCENE))
    onnx_path.unlink()
    with pytest.raises(ModelLoadError, match="not found"):
        OnnxDetector.from_path(onnx_path, manifest_path)


def test_corrupt_model_is_a_load_error(tmp_path: Path, make_manifest: Callable[..., dict[str, Any]]) -> None:
    import hashlib

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"definitely not protobuf")
    manifest = make_manifest(sha256=hashlib.sha256(bad.read_bytes()).hexdigest())
    bad.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load"):
        OnnxDetector.from_path(bad)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 3), dtype=np.float32),
        np.zeros((0, 10, 3), dtype=np.uint8),
    ],
)
def test_bad_images_are_value_errors(tiny_model: ModelFactory, image: np.ndarray) -> None:
    onnx_path, _ = tiny_model(ultralytics_output(SCENE))
    with pytest.raises(ValueError):
        OnnxDetector.from_path(onnx_path).detect(image)


def test_providers_fall_back_to_cpu() -> None:
    assert choose_providers(None) == ["CPUExecutionProvider"]
    assert choose_providers(["NoSuchExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
