"""YOLOX-Nano (COCO-80) on the real Arlington kerb clip, through the shipped manifest.

Needs the shared real data; the `shared_data` fixture fails the test when it is missing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

from gridwatch.models.base import ModelIntegrityError
from gridwatch.models.onnx_backend import OnnxDetector

pytestmark = pytest.mark.realdata

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "models" / "manifests" / "yolox_nano_coco80.json"
CLIP = "videos/arlington_crystal_dr_curb_parked.avi"
SAMPLED = (0, 30, 60, 90, 115)
VEHICLES = {"car", "truck", "bus"}


def read_frames(path: Path, indices: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Decode sequentially (seeking is unreliable in AVI) and keep the wanted frame indices."""
    cap = cv2.VideoCapture(str(path))
    frames: dict[int, np.ndarray] = {}
    index = 0
    while len(frames) < len(indices):
        ok, frame = cap.read()
        if not ok:
            break
        if index in indices:
            frames[index] = frame
        index += 1
    cap.release()
    assert len(frames) == len(indices), f"decoded only frames {sorted(frames)} of {path}"
    return frames


@pytest.fixture(scope="module")
def yolox(shared_data: Path) -> OnnxDetector:
    return OnnxDetector.from_path(shared_data / "models" / "yolox_nano.onnx", MANIFEST, threads=1)


@pytest.fixture(scope="module")
def arlington(shared_data: Path) -> dict[int, np.ndarray]:
    return read_frames(shared_data / CLIP, SAMPLED)


@pytest.fixture(scope="module")
def kerb_boxes(shared_data: Path) -> np.ndarray:
    """Approximate boxes of the vehicles parked at the kerbs for the whole clip (manual annotation)."""
    events = json.loads((shared_data / "events.json").read_text())[CLIP]["events"][0]
    boxes = list(events["stationary_vehicle_bboxes_xyxy_approx"])
    boxes.append([504, 204, 539, 236])  # grey car at the right kerb, named in the notes
    return np.asarray(boxes, dtype=np.float32)


def test_manifest_matches_the_shared_model(yolox: OnnxDetector) -> None:
    assert yolox.info.name == "yolox-nano-coco80"
    assert yolox.info.input_size == (416, 416) and len(yolox.info.class_names) == 80


def test_finds_several_plausible_cars_on_every_sampled_frame(
    yolox: OnnxDetector, arlington: dict[int, np.ndarray]
) -> None:
    for index, frame in arlington.items():
        det = yolox.detect(frame)
        cars = det[det.data["class_name"] == "car"]
        assert len(cars) >= 5, f"frame {index}: only {len(cars)} cars"
        w = cars.xyxy[:, 2] - cars.xyxy[:, 0]
        h = cars.xyxy[:, 3] - cars.xyxy[:, 1]
        assert (cars.xyxy >= 0).all() and (cars.xyxy[:, [0, 2]] <= 704).all() and (cars.xyxy[:, [1, 3]] <= 576).all()
        assert ((w >= 10) & (h >= 10)).all(), f"frame {index}: degenerate car boxes {cars.xyxy}"
        assert ((w <= 704 * 0.5) & (h <= 576 * 0.5)).all(), f"frame {index}: car box larger than half the frame"
        assert ((w / h > 0.4) & (w / h < 3.5)).all(), f"frame {index}: implausible car aspect ratios {w / h}"
        assert (cars.confidence >= 0.25).all()  # type: ignore[operator]


def test_kerb_parked_vehicles_are_found_where_annotated(
    yolox: OnnxDetector, arlington: dict[int, np.ndarray], kerb_boxes: np.ndarray
) -> None:
    for index, frame in arlington.items():
        det = yolox.detect(frame)
        vehicles = det[np.isin(det.data["class_name"], list(VEHICLES))]
        best_iou = sv.box_iou_batch(kerb_boxes, vehicles.xyxy).max(axis=1)
        matched = int((best_iou >= 0.5).sum())
        assert matched >= 4, f"frame {index}: kerb vehicles matched {matched}/5, best IoUs {best_iou.round(2)}"


def test_detect_is_deterministic_and_leaves_the_frame_alone(
    yolox: OnnxDetector, arlington: dict[int, np.ndarray]
) -> None:
    frame = arlington[SAMPLED[0]]
    before = frame.copy()
    a, b = yolox.detect(frame), yolox.detect(frame)
    np.testing.assert_array_equal(frame, before)
    np.testing.assert_array_equal(a.xyxy, b.xyxy)


def test_sha256_mismatch_on_the_real_model(shared_data: Path, tmp_path: Path) -> None:
    manifest = json.loads(MANIFEST.read_text())
    real_sha = manifest["sha256"]
    manifest["sha256"] = "0" * 64
    bad_manifest = tmp_path / "yolox_nano.json"
    bad_manifest.write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError) as err:
        OnnxDetector.from_path(shared_data / "models" / "yolox_nano.onnx", bad_manifest)
    assert err.value.expected == "0" * 64 and err.value.actual == real_sha
    assert real_sha in str(err.value)


def test_a_copied_model_with_a_flipped_byte_is_refused(shared_data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "yolox_nano.onnx"
    shutil.copyfile(shared_data / "models" / "yolox_nano.onnx", copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        OnnxDetector.from_path(copy, MANIFEST)
