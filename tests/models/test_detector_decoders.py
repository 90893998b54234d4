"""Letterbox, decoders and postprocessing on tiny synthetic tensors with known answers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from gridwatch.models.base import ModelConfigError
from gridwatch.models.decoders import (
    DECODERS,
    Decoded,
    LetterboxTransform,
    decode_ultralytics,
    decode_yolov5,
    decode_yolox,
    letterbox,
    letterbox_transform,
    nms,
    postprocess,
    preprocess,
    undo_letterbox,
    yolox_grid,
)
from gridwatch.models.manifest import ModelManifest

NC = 5


# --- encoders: the inverse of each decoder, per box


def encode_ultralytics(boxes: list[tuple[float, float, float, float, int, float]], n: int = 20) -> np.ndarray:
    """(1, 4+nc, n) with each box (cx, cy, w, h, cls, score) in its own column; other columns score 0."""
    out = np.zeros((1, 4 + NC, n), dtype=np.float32)
    for j, (cx, cy, w, h, cls, score) in enumerate(boxes):
        out[0, :4, j] = (cx, cy, w, h)
        out[0, 4 + cls, j] = score
    return out


def encode_yolov5(boxes: list[tuple[float, float, float, float, int, float]], n: int = 20) -> np.ndarray:
    """(1, n, 5+nc): objectness 1.0 times class score."""
    out = np.zeros((1, n, 5 + NC), dtype=np.float32)
    for j, (cx, cy, w, h, cls, score) in enumerate(boxes):
        out[0, j, :5] = (cx, cy, w, h, 1.0)
        out[0, j, 5 + cls] = score
    return out


def encode_yolox(boxes: list[tuple[float, float, float, float, int, float]], input_size: tuple[int, int]) -> np.ndarray:
    """(1, N, 5+nc) raw YOLOX head: each box goes into the stride-8 cell under its centre."""
    grid, stride = yolox_grid(input_size)
    out = np.zeros((1, len(grid), 5 + NC), dtype=np.float32)
    gw = input_size[0] // 8
    for cx, cy, w, h, cls, score in boxes:
        gx, gy = int(cx // 8), int(cy // 8)
        row = gy * gw + gx
        assert tuple(grid[row]) == (gx, gy) and stride[row, 0] == 8
        out[0, row, :5] = (cx / 8 - gx, cy / 8 - gy, math.log(w / 8), math.log(h / 8), 0.5)
        out[0, row, 5 + cls] = score / 0.5
    return out


ENCODERS: dict[str, Callable[..., np.ndarray]] = {
    "ultralytics": lambda boxes, size: encode_ultralytics(boxes),
    "yolov5": lambda boxes, size: encode_yolov5(boxes),
    "yolox": encode_yolox,
}


# --- letterbox


@pytest.mark.parametrize(
    ("image_wh", "input_size", "center", "scale", "pad", "resized"),
    [
        ((200, 100), (64, 64), True, 0.32, (0, 16), (64, 32)),
        ((200, 100), (64, 64), False, 0.32, (0, 0), (64, 32)),
        ((100, 200), (64, 64), True, 0.32, (16, 0), (32, 64)),
        ((640, 480), (640, 640), True, 1.0, (0, 80), (640, 480)),
        ((704, 576), (416, 416), False, 416 / 704, (0, 0), (416, 340)),
        ((64, 64), (128, 96), True, 1.5, (16, 0), (96, 96)),  # upscaling a small image
        ((101, 50), (64, 64), True, 64 / 101, (0, 16), (64, 32)),  # odd padding rounds down on the left/top
    ],
)
def test_letterbox_transform(
    image_wh: tuple[int, int],
    input_size: tuple[int, int],
    center: bool,
    scale: float,
    pad: tuple[int, int],
    resized: tuple[int, int],
) -> None:
    t = letterbox_transform(image_wh, input_size, center)
    assert t.scale == pytest.approx(scale)
    assert (t.pad_x, t.pad_y) == pad
    assert t.resized_wh == resized


@pytest.mark.parametrize("center", [True, False])
def test_letterbox_pads_with_value_and_never_mutates(center: bool) -> None:
    image = np.full((100, 200, 3), 7, dtype=np.uint8)
    before = image.copy()
    out, scale, (px, py) = letterbox(image, (64, 64), center=center, pad_value=114)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert scale == pytest.approx(0.32)
    assert (out[py : py + 32, px : px + 64] == 7).all()
    assert (out == 114).sum() == 64 * 64 * 3 - 32 * 64 * 3
    np.testing.assert_array_equal(image, before)


def test_letterbox_returns_a_new_array_even_without_resizing() -> None:
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    out, scale, pad = letterbox(image, (64, 64), center=True, pad_value=114)
    assert scale == 1.0 and pad == (0, 0)
    out[0, 0] = 255
    assert image[0, 0, 0] == 0


# --- preprocess


@pytest.mark.parametrize(
    ("color", "scale", "first_channel_value"),
    [("BGR", "0-255", 10.0), ("RGB", "0-255", 30.0), ("RGB", "0-1", 30.0 / 255), ("BGR", "0-1", 10.0 / 255)],
)
def test_preprocess_colour_and_scale(
    color: str, scale: str, first_channel_value: float, make_manifest: Callable[..., dict[str, Any]]
) -> None:
    manifest = ModelManifest.model_validate(make_manifest(color=color, scale=scale, input_size=[32, 16]))
    image = np.zeros((8, 16, 3), dtype=np.uint8)
    image[:] = (10, 20, 30)  # B, G, R
    tensor = preprocess(image, manifest)
    assert tensor.shape == (1, 3, 16, 32) and tensor.dtype == np.float32 and tensor.flags.c_contiguous
    assert tensor[0, 0, 8, 16] == pytest.approx(first_channel_value)
    assert tensor[0, 1, 8, 16] == pytest.approx(20.0 / 255 if scale == "0-1" else 20.0)


# --- decoders: layout only


def test_decode_ultralytics_layout() -> None:
    d = decode_ultralytics(encode_ultralytics([(32, 20, 10, 8, 3, 0.9)], n=4))
    assert d.boxes.shape == (4, 4) and d.boxes.dtype == np.float32
    np.testing.assert_allclose(d.boxes[0], [27, 16, 37, 24])
    assert d.class_ids[0] == 3 and d.scores[0] == pytest.approx(0.9)
    assert (d.scores[1:] == 0).all()


def test_decode_yolov5_multiplies_objectness() -> None:
    raw = encode_yolov5([(32, 20, 10, 8, 1, 0.8)], n=2)
    raw[0, 0, 4] = 0.5
    d = decode_yolov5(raw)
    np.testing.assert_allclose(d.boxes[0], [27, 16, 37, 24])
    assert d.class_ids[0] == 1 and d.scores[0] == pytest.approx(0.4)


@pytest.mark.parametrize("input_size", [(416, 416), (64, 32)])
def test_decode_yolox_grid_and_strides(input_size: tuple[int, int]) -> None:
    grid, stride = yolox_grid(input_size)
    expected_n = sum((input_size[0] // s) * (input_size[1] // s) for s in (8, 16, 32))
    assert len(grid) == len(stride) == expected_n
    raw = np.zeros((1, expected_n, 5 + NC), dtype=np.float32)
    last = expected_n - 1  # bottom-right cell of the stride-32 level
    raw[0, last, :5] = (0.5, 0.5, 0.0, math.log(2.0), 0.8)
    raw[0, last, 5 + 2] = 0.5
    d = decode_yolox(raw, input_size)
    cx, cy = (input_size[0] // 32 - 0.5) * 32, (input_size[1] // 32 - 0.5) * 32
    np.testing.assert_allclose(d.boxes[last], [cx - 16, cy - 32, cx + 16, cy + 32], atol=1e-4)
    assert d.class_ids[last] == 2 and d.scores[last] == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("decoder", "raw", "size"),
    [
        ("ultralytics", np.zeros((1, 4, 10), dtype=np.float32), (64, 64)),  # no class rows
        ("ultralytics", np.zeros((4 + NC, 10), dtype=np.float32), (64, 64)),  # missing batch axis
        ("yolov5", np.zeros((1, 10, 5), dtype=np.float32), (64, 64)),
        ("yolox", np.zeros((1, 3549, 5 + NC), dtype=np.float32), (640, 640)),  # 3549 rows means 416x416
    ],
)
def test_decoders_reject_wrong_layouts(decoder: str, raw: np.ndarray, size: tuple[int, int]) -> None:
    with pytest.raises(ModelConfigError):
        DECODERS[decoder](raw, size)


# --- end to end: image box -> tensor -> image box

# (image_wh, input_size, letterbox center?)
GEOMETRIES = [
    ((200, 100), (64, 64), True),
    ((200, 100), (64, 64), False),
    ((100, 200), (64, 64), True),
    ((704, 576), (416, 416), False),
    ((640, 360), (320, 320), True),
]


@pytest.mark.parametrize("decoder", ["ultralytics", "yolov5", "yolox"])
@pytest.mark.parametrize(("image_wh", "input_size", "center"), GEOMETRIES)
def test_known_box_decodes_back_to_its_place_in_the_original_image(
    decoder: str, image_wh: tuple[int, int], input_size: tuple[int, int], center: bool
) -> None:
    w, h = image_wh
    truth = np.array([0.25 * w, 0.3 * h, 0.75 * w, 0.7 * h], dtype=np.float32)  # xyxy in the image
    t = letterbox_transform(image_wh, input_size, center)
    x1, y1, x2, y2 = truth * t.scale + np.array([t.pad_x, t.pad_y, t.pad_x, t.pad_y])
    box = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 3, 0.9)
    raw = ENCODERS[decoder]([box], input_size)
    result = postprocess(DECODERS[decoder](raw, input_size), t, image_wh, 0.25, 0.45)
    assert len(result.boxes) == 1
    np.testing.assert_allclose(result.boxes[0], truth, atol=1e-3 * max(w, h))
    assert result.class_ids.tolist() == [3]
    assert result.scores[0] == pytest.approx(0.9, abs=1e-5)


# --- postprocess policy

IDENTITY = LetterboxTransform(scale=1.0, pad_x=0, pad_y=0, resized_wh=(100, 100))


def decoded(rows: list[tuple[float, float, float, float, float, int]]) -> Decoded:
    arr = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
    return Decoded(arr[:, :4].copy(), arr[:, 4].copy(), arr[:, 5].astype(np.int64))


@pytest.mark.parametrize(
    ("name", "rows", "kwargs", "expected_scores"),
    [
        ("below threshold dropped", [(0, 0, 10, 10, 0.2, 0), (20, 20, 30, 30, 0.3, 0)], {}, [0.3]),
        ("same-class duplicate merged", [(0, 0, 10, 10, 0.9, 0), (1, 0, 11, 10, 0.8, 0)], {}, [0.9]),
        ("other class survives overlap", [(0, 0, 10, 10, 0.9, 0), (1, 0, 11, 10, 0.8, 1)], {}, [0.9, 0.8]),
        ("low overlap kept", [(0, 0, 10, 10, 0.9, 0), (8, 0, 18, 10, 0.8, 0)], {}, [0.9, 0.8]),
        ("class filter", [(0, 0, 10, 10, 0.9, 0), (20, 20, 30, 30, 0.8, 1)], {"cls": [1]}, [0.8]),
        (
            "max detections",
            [(i * 12, 0, i * 12 + 10, 10, 0.5 + i / 100, 0) for i in range(5)],
            {"max": 2},
            [0.54, 0.53],
        ),
        ("empty input", [], {}, []),
    ],
)
def test_postprocess_policy(
    name: str, rows: list[tuple[float, ...]], kwargs: dict[str, object], expected_scores: list[float]
) -> None:
    cls_filter = kwargs.get("cls")
    result = postprocess(
        decoded(rows),  # type: ignore[arg-type]
        IDENTITY,
        (100, 100),
        conf_threshold=0.25,
        iou_threshold=0.45,
        class_filter=None if cls_filter is None else np.asarray(cls_filter),
        max_detections=int(kwargs.get("max", 300)),  # type: ignore[call-overload]
    )
    np.testing.assert_allclose(result.scores, expected_scores, atol=1e-6)


def test_postprocess_clips_to_image_and_drops_boxes_in_the_padding() -> None:
    t = letterbox_transform((200, 100), (64, 64), center=True)  # pad_y = 16
    rows = [
        (-5, 20, 30, 70, 0.9, 0),  # sticks out left and into the bottom padding: clipped
        (10, 0, 40, 10, 0.8, 1),  # entirely in the top padding: dropped
    ]
    result = postprocess(decoded(rows), t, (200, 100), 0.25, 0.45)  # type: ignore[arg-type]
    assert len(result.boxes) == 1
    np.testing.assert_allclose(result.boxes[0], [0, 12.5, 93.75, 100])


def test_nms_returns_best_first() -> None:
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [1, 1, 10, 10]], dtype=np.float32)
    keep = nms(boxes, np.array([0.5, 0.9, 0.7], dtype=np.float32), np.zeros(3, dtype=np.int64), 0.45)
    assert keep.tolist() == [1, 2]


def test_undo_letterbox_does_not_mutate() -> None:
    boxes = np.array([[10, 20, 30, 40]], dtype=np.float32)
    undo_letterbox(boxes, LetterboxTransform(0.5, 2, 4, (10, 10)), (100, 100))
    assert boxes.tolist() == [[10, 20, 30, 40]]
