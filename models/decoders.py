"""Pre- and post-processing for YOLO-family exports: letterbox, output decoders, NMS. Pure numpy, no I/O.

The pipeline for one image is::

    tensor = preprocess(image, manifest)               # letterbox + colour + scale, float32 NCHW
    raw = <runtime>(tensor)
    decoded = DECODERS[manifest.decoder](raw, manifest.input_size)  # xyxy in *input* pixels
    result = postprocess(decoded, transform, ...)      # threshold, class-aware NMS, to image pixels

Each decoder returns every candidate (no thresholding) so it stays a plain layout conversion that can be
tested on a tiny synthetic tensor; `postprocess` owns all the policy (thresholds, class filter, NMS,
clipping).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from gridwatch.models.base import ModelConfigError
from gridwatch.models.manifest import ModelManifest

# At most this many highest-scoring candidates enter NMS: keeps the greedy loop bounded when a bad threshold
# (or a garbage frame) lets thousands of boxes through.
MAX_NMS_CANDIDATES = 3000


class Decoded(NamedTuple):
    """Candidate boxes: ``boxes`` xyxy float32 (N, 4), ``scores`` float32 (N,), ``class_ids`` int64 (N,)."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


@dataclass(frozen=True)
class LetterboxTransform:
    """How an image was placed into the network input: ``input = image * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: int
    pad_y: int
    resized_wh: tuple[int, int]


def letterbox_transform(image_wh: tuple[int, int], input_size: tuple[int, int], center: bool) -> LetterboxTransform:
    """Compute the aspect-preserving fit of an image of `image_wh` into `input_size` (both (w, h))."""
    (w, h), (in_w, in_h) = image_wh, input_size
    scale = min(in_w / w, in_h / h)
    new_w = min(in_w, max(1, round(w * scale)))
    new_h = min(in_h, max(1, round(h * scale)))
    pad_x, pad_y = ((in_w - new_w) // 2, (in_h - new_h) // 2) if center else (0, 0)
    return LetterboxTransform(scale=scale, pad_x=pad_x, pad_y=pad_y, resized_wh=(new_w, new_h))


def letterbox(
    image: np.ndarray, size: tuple[int, int], center: bool, pad_value: int
) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize `image` to fit `size` (w, h) keeping its aspect ratio, and pad the rest with `pad_value`.

    `center` pads evenly on both sides (Ultralytics); otherwise the image sits at the top-left (YOLOX).
    Returns the padded image (always a new array), the scale and the (pad_x, pad_y) offset of the image
    inside it.
    """
    t = letterbox_transform((image.shape[1], image.shape[0]), size, center)
    resized = (
        image
        if t.resized_wh == (image.shape[1], image.shape[0])
        else cv2.resize(image, t.resized_wh, interpolation=cv2.INTER_LINEAR)
    )
    out = np.full((size[1], size[0], image.shape[2]), pad_value, dtype=image.dtype)
    new_w, new_h = t.resized_wh
    out[t.pad_y : t.pad_y + new_h, t.pad_x : t.pad_x + new_w] = resized
    return out, t.scale, (t.pad_x, t.pad_y)


def preprocess(image: np.ndarray, manifest: ModelManifest) -> np.ndarray:
    """Turn a BGR uint8 image into the float32 (1, 3, h, w) tensor the manifest's network expects."""
    padded, _, _ = letterbox(image, manifest.input_size, manifest.letterbox == "center", manifest.pad_value)
    if manifest.color == "RGB":
        padded = cv2.cvtColor(padded, cv2.COLOR_BGR2RGB)
    tensor = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)
    if manifest.scale == "0-1":
        tensor *= np.float32(1.0 / 255.0)
    return tensor


def _cxcywh_to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    cx, cy, w, h = cxcywh[:, 0], cxcywh[:, 1], cxcywh[:, 2] / 2, cxcywh[:, 3] / 2
    return np.stack([cx - w, cy - h, cx + w, cy + h], axis=1).astype(np.float32)


def _best_class(cls_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = cls_scores.argmax(axis=1)
    return cls_scores[np.arange(len(ids)), ids], ids.astype(np.int64)


def _require_rank3(output: np.ndarray, min_width: int, layout: str, axis: int) -> None:
    if output.ndim != 3 or output.shape[0] != 1 or output.shape[axis] <= min_width:
        raise ModelConfigError(f"expected output {layout}, got shape {tuple(output.shape)}")


def decode_ultralytics(output: np.ndarray) -> Decoded:
    """Decode a YOLOv8/YOLO11 export: (1, 4+nc, N) = cx, cy, w, h in input pixels, then class scores."""
    _require_rank3(output, 4, "(1, 4+nc, N) for the 'ultralytics' decoder", axis=1)
    rows = output[0].T
    scores, ids = _best_class(rows[:, 4:])
    return Decoded(_cxcywh_to_xyxy(rows[:, :4]), scores.astype(np.float32), ids)


def decode_yolov5(output: np.ndarray) -> Decoded:
    """Decode a YOLOv5 export: (1, N, 5+nc) = cx, cy, w, h, objectness, class scores; score = obj * cls."""
    _require_rank3(output, 5, "(1, N, 5+nc) for the 'yolov5' decoder", axis=2)
    rows = output[0]
    scores, ids = _best_class(rows[:, 5:] * rows[:, 4:5])
    return Decoded(_cxcywh_to_xyxy(rows[:, :4]), scores.astype(np.float32), ids)


def yolox_grid(input_size: tuple[int, int], strides: Sequence[int] = (8, 16, 32)) -> tuple[np.ndarray, np.ndarray]:
    """Return the (N, 2) grid cell (x, y) and (N, 1) stride of every YOLOX output row, in export order.

    Cached per (input_size, strides); the arrays are read-only because every call shares them.
    """
    return _yolox_grid(tuple(input_size), tuple(strides))  # type: ignore[arg-type]


@functools.lru_cache(maxsize=8)
def _yolox_grid(input_size: tuple[int, int], strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    grids, stride_col = [], []
    for stride in strides:
        gw, gh = input_size[0] // stride, input_size[1] // stride
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        stride_col.append(np.full((gw * gh, 1), stride))
    grid, stride_arr = np.concatenate(grids).astype(np.float32), np.concatenate(stride_col).astype(np.float32)
    grid.flags.writeable = False
    stride_arr.flags.writeable = False
    return grid, stride_arr


def decode_yolox(output: np.ndarray, input_size: tuple[int, int], strides: Sequence[int] = (8, 16, 32)) -> Decoded:
    """Decode a raw YOLOX export (``decode_in_inference=False``): (1, N, 5+nc), N grid cells over `strides`.

    xy = (offset + grid) * stride, wh = exp(wh) * stride; objectness and class scores are already sigmoid, so
    the score is obj * cls. `input_size` is (w, h) and fixes N, which is checked.
    """
    _require_rank3(output, 5, "(1, N, 5+nc) for the 'yolox' decoder", axis=2)
    grid, stride = yolox_grid(input_size, strides)
    if output.shape[1] != len(grid):
        raise ModelConfigError(
            f"yolox output has {output.shape[1]} rows but input {list(input_size)} with strides "
            f"{list(strides)} gives {len(grid)} grid cells; check the manifest's input_size"
        )
    rows = output[0]
    xy = (rows[:, :2] + grid) * stride
    wh = np.exp(np.minimum(rows[:, 2:4], 20.0)) * stride  # clamp: a garbage logit must not overflow to inf
    scores, ids = _best_class(rows[:, 5:] * rows[:, 4:5])
    return Decoded(_cxcywh_to_xyxy(np.concatenate([xy, wh], axis=1)), scores.astype(np.float32), ids)


DecoderFn = Callable[[np.ndarray, tuple[int, int]], Decoded]

DECODERS: dict[str, DecoderFn] = {
    "ultralytics": lambda output, _size: decode_ultralytics(output),
    "yolox": lambda output, size: decode_yolox(output, size),
    "yolov5": lambda output, _size: decode_yolov5(output),
}


def output_class_count(decoder: str, shape: Sequence[int | str | None]) -> int | None:
    """Number of classes implied by an output shape for `decoder`, or None when that dimension is dynamic."""
    dim, extra = (shape[1], 4) if decoder == "ultralytics" else (shape[2], 5)
    return dim - extra if isinstance(dim, int) else None


def nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-aware greedy NMS; return the indices kept, best score first.

    Boxes of different classes never suppress each other (each class is shifted to its own region of the
    plane), so a person standing by a car survives.
    """
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    offset = (float(boxes.max()) + 1.0) * class_ids.astype(np.float32)[:, None]
    b = boxes + offset
    areas = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = (np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0])).clip(0)
        h = (np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1])).clip(0)
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def undo_letterbox(boxes: np.ndarray, transform: LetterboxTransform, image_wh: tuple[int, int]) -> np.ndarray:
    """Map xyxy boxes from network-input pixels back to the original image, clipped to its bounds."""
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - transform.pad_x) / transform.scale
    out[:, [1, 3]] = (out[:, [1, 3]] - transform.pad_y) / transform.scale
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, image_wh[0])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, image_wh[1])
    return out


def _select(decoded: Decoded, mask: np.ndarray | slice) -> Decoded:
    return Decoded(decoded.boxes[mask], decoded.scores[mask], decoded.class_ids[mask])


def postprocess(
    decoded: Decoded,
    transform: LetterboxTransform,
    image_wh: tuple[int, int],
    conf_threshold: float,
    iou_threshold: float,
    class_filter: np.ndarray | None = None,
    max_detections: int = 300,
) -> Decoded:
    """Threshold, keep `class_filter` ids, class-aware NMS, map to image pixels, drop boxes clipped away.

    `conf_threshold` trades misses for false alarms; `iou_threshold` is the overlap above which a weaker box
    of the same class is treated as a duplicate (lower merges more aggressively, and may merge parked cars
    that overlap in a perspective view); `max_detections` bounds the work downstream on pathological frames.
    """
    mask = decoded.scores >= conf_threshold
    if class_filter is not None:
        mask &= np.isin(decoded.class_ids, class_filter)
    cand = _select(decoded, mask)
    if len(cand.scores) > MAX_NMS_CANDIDATES:
        cand = _select(cand, np.argsort(-cand.scores, kind="stable")[:MAX_NMS_CANDIDATES])
    kept = _select(cand, nms(cand.boxes, cand.scores, cand.class_ids, iou_threshold)[:max_detections])
    boxes = undo_letterbox(kept.boxes, transform, image_wh)
    visible = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Decoded(boxes[visible], kept.scores[visible].astype(np.float32), kept.class_ids[visible])
