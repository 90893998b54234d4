"""Test-time augmentation: run a model on the frame and on its mirror image, keep the best box per object.

A detector that runs every few seconds (the street model beside the person/vehicle detector, `every_s: 5`) can
afford two inferences per run. Horizontal flip TTA (`tta: flip` on a detector entry) runs the frame and its
left-right mirror, maps the mirror's boxes back (``x1' = w - x2``, ``x2' = w - x1``), pools both sets and runs
class-aware NMS at the detector's own `iou` threshold, so each object keeps one box (the more confident of the two
views) and an object only one view found is kept. Classes never suppress each other.

Measured on the street model (`garbage_cn_street/val`, 440 photos, `gridwatch models eval --tta flip`): see
`models/street/MODEL_CARD.md`. Weighted box merging (averaging the two views' boxes) scored lower there than NMS.

When the backend has a dynamic batch (`OnnxDetector.dynamic_batch`), the frame and its mirror go through the network
as one batch of two (one run); otherwise the detector runs twice. The runtime stays numpy + ONNX Runtime only.
"""

from __future__ import annotations

import threading
from typing import Literal, Protocol, get_args, runtime_checkable

import numpy as np
import supervision as sv

from gridwatch.models.base import Detector, ModelInfo, check_image
from gridwatch.models.decoders import nms

TtaMode = Literal["none", "flip"]
TTA_MODES: tuple[str, ...] = get_args(TtaMode)


@runtime_checkable
class BatchDetector(Protocol):
    """A detector that can run several images at once (`OnnxDetector`)."""

    @property
    def dynamic_batch(self) -> bool: ...

    def detect_batch(self, images: list[np.ndarray]) -> list[sv.Detections]: ...


def mirror(image: np.ndarray) -> np.ndarray:
    """The left-right mirror of an ``HxWxC`` image, as a new contiguous array (the input is untouched)."""
    return np.ascontiguousarray(image[:, ::-1])


def unmirror(found: sv.Detections, width: int) -> sv.Detections:
    """Boxes found on the mirror of an image `width` pixels wide, in the original image's pixels (a new value).

    Pixel column ``i`` of the mirror is column ``width - 1 - i`` of the image, so the span ``[x1, x2)`` of the
    mirror is ``[width - x2, width - x1)`` of the image. Applying it twice gives the boxes back exactly."""
    xyxy = np.asarray(found.xyxy, dtype=np.float32).reshape(-1, 4)
    back = xyxy.copy()
    back[:, 0] = np.float32(width) - xyxy[:, 2]
    back[:, 2] = np.float32(width) - xyxy[:, 0]
    return sv.Detections(
        xyxy=back,
        confidence=None if found.confidence is None else np.asarray(found.confidence).copy(),
        class_id=None if found.class_id is None else np.asarray(found.class_id).copy(),
        data={k: np.asarray(v).copy() for k, v in found.data.items()},
    )


def merge_views(views: list[sv.Detections], iou_threshold: float) -> sv.Detections:
    """Pool the detections of several views of one image and keep one box per object: class-aware NMS at
    `iou_threshold`, best score first (on a tie, the earlier view's box). Boxes of different classes never
    suppress each other."""
    full = [v for v in views if len(v)]
    if not full:
        return views[0]
    pooled = full[0] if len(full) == 1 else sv.Detections.merge(full)
    n = len(pooled)
    conf = np.ones(n, np.float32) if pooled.confidence is None else np.asarray(pooled.confidence, np.float32)
    ids = np.zeros(n, np.int64) if pooled.class_id is None else np.asarray(pooled.class_id, np.int64)
    keep = nms(np.asarray(pooled.xyxy, np.float32), conf, ids, iou_threshold)
    out = pooled[keep]
    assert isinstance(out, sv.Detections)
    return out


class FlipTtaDetector:
    """`inner` run on each frame and on its mirror, merged (see the module docstring); `info` is `inner`'s.

    iou_threshold: overlap above which the weaker of two same-class boxes is the same object (use the detector's
        own NMS `iou`, so TTA merges exactly what the model's NMS would have).
    `runs` counts the network runs (a batch of two is one run), for tests and benchmarks."""

    def __init__(self, inner: Detector, iou_threshold: float) -> None:
        self.inner = inner
        self.iou_threshold = iou_threshold
        self.runs = 0
        self._lock = threading.Lock()  # one detector is shared by every camera thread in the worker

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    @property
    def batched(self) -> bool:
        """Whether the frame and its mirror go through the network in one run (a dynamic-batch export)."""
        return isinstance(self.inner, BatchDetector) and bool(self.inner.dynamic_batch)

    def _count(self, runs: int) -> None:
        with self._lock:
            self.runs += runs

    def detect(self, image: np.ndarray) -> sv.Detections:
        check_image(image)
        flipped = mirror(image)
        if self.batched:
            assert isinstance(self.inner, BatchDetector)
            plain, seen_mirrored = self.inner.detect_batch([image, flipped])
            self._count(1)
        else:
            plain, seen_mirrored = self.inner.detect(image), self.inner.detect(flipped)
            self._count(2)
        return merge_views([plain, unmirror(seen_mirrored, int(image.shape[1]))], self.iou_threshold)


def with_tta(detector: Detector, mode: str, iou_threshold: float) -> Detector:
    """`detector` with test-time augmentation `mode` ('none': unchanged; 'flip': `FlipTtaDetector`)."""
    if mode == "none":
        return detector
    if mode == "flip":
        return FlipTtaDetector(detector, iou_threshold)
    raise ValueError(f"unknown TTA mode {mode!r}; use one of {list(TTA_MODES)}")
