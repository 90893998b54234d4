"""Rectangular inputs (e.g. 384x224 for 16:9 cameras) and dynamic-batch exports through the ONNX backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gridwatch.models.base import ModelConfigError
from gridwatch.models.decoders import letterbox
from gridwatch.models.onnx_backend import OnnxDetector
from tests.models.conftest import DEMO_CLASSES, manifest_dict, sha256_of

NC = len(DEMO_CLASSES)
W, H = 384, 224  # network input, width x height


def head(boxes: list[tuple[float, float, float, float, int, float]], n: int = 8) -> np.ndarray:
    out = np.zeros((1, 4 + NC, n), dtype=np.float32)
    for j, (cx, cy, w, h, cls, score) in enumerate(boxes):
        out[0, :4, j] = (cx, cy, w, h)
        out[0, 4 + cls, j] = score
    return out


def build_batch_onnx(path: Path, raw: np.ndarray, input_hw: tuple[int, int], batch: str | int = "batch") -> Path:
    """``images[batch,3,h,w] -> raw + 100 * mean(image) on the first box's cx``: each image of a batch gets
    its own output, so a mixed-up batch shows as boxes in the wrong place."""
    from onnx import TensorProto, helper, numpy_helper, save_model

    shift = np.zeros_like(raw)
    shift[0, 0, 0] = 100.0
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean4"], axes=[1, 2, 3], keepdims=1),  # (batch, 1, 1, 1)
        helper.make_node("Reshape", ["mean4", "to3"], ["mean"]),  # (batch, 1, 1)
        helper.make_node("Mul", ["mean", "shift"], ["moved"]),  # (batch, 4+nc, n)
        helper.make_node("Add", ["raw", "moved"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "batch_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, *input_hw])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, raw.shape[1], raw.shape[2]])],
        initializer=[numpy_helper.from_array(raw, "raw"), numpy_helper.from_array(shift, "shift"),
                     numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "to3")],
    )
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def write_model(tmp_path: Path, raw: np.ndarray, input_hw: tuple[int, int], input_size: list[int],
                batch: str | int = "batch") -> Path:
    onnx_path = build_batch_onnx(tmp_path / "rect.onnx", raw, input_hw, batch)
    manifest = manifest_dict(input_size=input_size, sha256=sha256_of(onnx_path))
    onnx_path.with_suffix(".json").write_text(json.dumps(manifest), encoding="utf-8")
    return onnx_path


def test_letterbox_into_a_wide_input_pads_top_and_bottom() -> None:
    out, scale, pad = letterbox(np.zeros((720, 1280, 3), np.uint8), (W, H), center=True, pad_value=114)
    # 1280x720 * 0.3 = 384x216, centred in 384x224: 4 rows of padding above and below
    assert out.shape == (H, W, 3) and scale == pytest.approx(0.3) and pad == (0, 4)
    assert (out[:4] == 114).all() and (out[-4:] == 114).all() and (out[4:-4] == 0).all()


def test_a_box_in_a_384x224_input_lands_in_the_right_place_of_a_16_9_and_a_4_3_frame(tmp_path: Path) -> None:
    # input box xyxy (144, 85, 240, 139)
    model = write_model(tmp_path, head([(192, 112, 96, 54, 0, 0.9)]), (H, W), [W, H])
    det = OnnxDetector.from_path(model, conf_threshold=0.5)
    wide = det.detect(np.zeros((720, 1280, 3), np.uint8))  # black: only the grey padding moves the box (below)
    # 16:9: scale 0.3, pad_y 4 -> x (144/0.3, 240/0.3) = (480, 800), y ((85-4)/0.3, (139-4)/0.3) = (270, 450);
    # the grey padding (2 x 4 rows of 114/255) moves cx by 100 * mean = 100 * (8/224 * 114/255) = 1.597 px
    dx = 100 * (8 / 224) * (114 / 255) / 0.3
    np.testing.assert_allclose(wide.xyxy[0], [480 + dx, 270, 800 + dx, 450], atol=0.05)
    # 4:3 (640x480): scale min(0.6, 0.4667) = 0.4667 -> 299x224 (rounded), pad_x (384-299)//2 = 42
    tall = det.detect(np.zeros((480, 640, 3), np.uint8))
    scale = 224 / 480
    mean_shift = 100 * ((384 - 299) * 224 / (384 * 224)) * (114 / 255)
    np.testing.assert_allclose(tall.xyxy[0], [(144 + mean_shift - 42) / scale, 85 / scale,
                                              (240 + mean_shift - 42) / scale, 139 / scale], atol=0.05)


def test_a_swapped_input_size_in_the_manifest_is_refused(tmp_path: Path) -> None:
    model = write_model(tmp_path, head([(192, 112, 96, 54, 0, 0.9)]), (H, W), [H, W])
    with pytest.raises(ModelConfigError, match=r"model input is 384x224 .* manifest input_size is 224x384"):
        OnnxDetector.from_path(model)


def test_a_dynamic_batch_gives_each_image_its_own_boxes(tmp_path: Path) -> None:
    model = write_model(tmp_path, head([(192, 112, 96, 54, 0, 0.9), (50, 50, 20, 20, 1, 0.8)]), (H, W), [W, H])
    det = OnnxDetector.from_path(model, conf_threshold=0.5)
    assert det.dynamic_batch
    images = [np.full((720, 1280, 3), v, np.uint8) for v in (0, 255, 128)] + [np.zeros((480, 640, 3), np.uint8)]
    batched = det.detect_batch(images)
    single = [det.detect(im) for im in images]
    assert len(batched) == 4
    for b, s in zip(batched, single, strict=True):
        np.testing.assert_allclose(b.xyxy, s.xyxy, atol=1e-3)
        assert b.class_id.tolist() == s.class_id.tolist()
    # the images really differed: the white frame's car is shifted right by ~100/0.3 px
    assert single[1].xyxy[0, 0] - single[0].xyxy[0, 0] > 300


def test_a_static_batch_export_is_run_image_by_image(tmp_path: Path) -> None:
    model = write_model(tmp_path, head([(192, 112, 96, 54, 0, 0.9)]), (H, W), [W, H], batch=1)
    det = OnnxDetector.from_path(model, conf_threshold=0.5)
    assert not det.dynamic_batch
    out = det.detect_batch([np.zeros((720, 1280, 3), np.uint8), np.full((720, 1280, 3), 255, np.uint8)])
    assert len(out) == 2 and out[1].xyxy[0, 0] - out[0].xyxy[0, 0] > 300
