"""Test-time augmentation: run a model on several views of a frame, keep the best box per object.

A detector that runs every few seconds (the street model beside the person/vehicle detector, `every_s: 5`) can
afford two or three inferences per run. A detector entry's `tta` picks the views (`TTA_VIEWS`):

- ``flip``: the frame and its left-right mirror; the mirror's boxes map back by ``x1' = w - x2``, ``x2' = w - x1``.
- ``multiscale``: Ultralytics' augmented inference: the frame, the frame shrunk to 0.83 and mirrored, and the frame
  shrunk to 0.67, each shrunk frame centred on a grey canvas of the frame's size (so every object looks smaller to
  the network, which helps a model that mostly saw objects small, e.g. in mosaic training); boxes map back by
  undoing the offset and the scale.

The views' boxes are pooled and class-aware NMS at the detector's own `iou` threshold keeps one box per object (the
most confident view's) and an object only one view found. Classes never suppress each other.

Measured on the street model (`garbage_cn_street/val`, 440 photos, `gridwatch models eval --tta ...`): see
`models/street/MODEL_CARD.md`. Weighted box merging (averaging the views' boxes) scored lower there than NMS.

When the backend has a dynamic batch (`OnnxDetector.dynamic_batch`), all views go through the network as one batch
(one run); otherwise the detector runs once per view. The runtime stays numpy + OpenCV + ONNX Runtime only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, Protocol, get_args, runtime_checkable

import cv2
import numpy as np
import supervision as sv

from gridwatch.models.base import Detector, ModelInfo, check_image
from gridwatch.models.decoders import nms

TtaMode = Literal["none", "flip", "multiscale"]
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
    return with_boxes(found, back)


def with_boxes(found: sv.Detections, xyxy: np.ndarray) -> sv.Detections:
    """`found` with its boxes replaced by `xyxy` (same order), every other field copied: a new value."""
    return sv.Detections(
        xyxy=xyxy,
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


@dataclass(frozen=True)
class View:
    """One view of a frame for test-time augmentation: the frame shrunk to `scale` of its size, centred on a grey
    canvas of the frame's own size (so the network sees the same scene with every object smaller), optionally
    mirrored left-right."""

    scale: float = 1.0
    flip: bool = False


# 'multiscale' is Ultralytics' own augmented-inference recipe (`BaseModel._predict_augment`: scales 1, 0.83, 0.67,
# the 0.83 view mirrored), taken as published, not tuned on our data.
TTA_VIEWS: dict[str, tuple[View, ...]] = {
    "flip": (View(), View(flip=True)),
    "multiscale": (View(), View(0.83, flip=True), View(0.67)),
}
PAD_VALUE = 114  # the grey Ultralytics letterboxes with


def shrink(image: np.ndarray, scale: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """`image` resized to `scale` (0 < scale <= 1) and centred on a `PAD_VALUE` canvas of its own size; returns the
    canvas and where the shrunk image sits in it: ``(x, y, w, h)``. Scale 1 returns the image itself."""
    h, w = int(image.shape[0]), int(image.shape[1])
    if scale >= 1.0:
        return image, (0, 0, w, h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.full_like(image, PAD_VALUE)
    x, y = (w - sw) // 2, (h - sh) // 2
    canvas[y : y + sh, x : x + sw] = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    return canvas, (x, y, sw, sh)


def unshrink(found: sv.Detections, placed: tuple[int, int, int, int], image_wh: tuple[int, int]) -> sv.Detections:
    """Boxes found on a `shrink` canvas, in the original image's pixels (clipped to it), as a new value."""
    x, y, sw, sh = placed
    w, h = image_wh
    if (x, y, sw, sh) == (0, 0, w, h):
        return found
    xyxy = np.asarray(found.xyxy, dtype=np.float32).reshape(-1, 4).copy()
    xyxy[:, [0, 2]] = ((xyxy[:, [0, 2]] - x) * (w / sw)).clip(0, w)
    xyxy[:, [1, 3]] = ((xyxy[:, [1, 3]] - y) * (h / sh)).clip(0, h)
    return with_boxes(found, xyxy)


def view_of(image: np.ndarray, view: View) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The image `view` shows the network, and where the (shrunk) frame sits in it before any mirroring."""
    shown, placed = shrink(image, view.scale)
    return (mirror(shown) if view.flip else shown), placed


def view_back(found: sv.Detections, view: View, placed: tuple[int, int, int, int],
              image_wh: tuple[int, int]) -> sv.Detections:
    """Boxes the network found on `view_of(image, view)`, in the image's pixels."""
    unflipped = unmirror(found, image_wh[0]) if view.flip else found
    return unshrink(unflipped, placed, image_wh)


class TtaDetector:
    """`inner` run on several views of each frame (`TTA_VIEWS[mode]`), their boxes mapped back and merged (see the
    module docstring); `info` is `inner`'s.

    iou_threshold: overlap above which the weaker of two same-class boxes is the same object (use the detector's
        own NMS `iou`, so TTA merges exactly what the model's NMS would have).
    `runs` counts the network runs (one batch of all views is one run), for tests and benchmarks."""

    def __init__(self, inner: Detector, mode: str, iou_threshold: float) -> None:
        if mode not in TTA_VIEWS:
            raise ValueError(f"unknown TTA mode {mode!r}; use one of {list(TTA_MODES)}")
        self.inner = inner
        self.mode = mode
        self.views = TTA_VIEWS[mode]
        self.iou_threshold = iou_threshold
        self.runs = 0
        self._lock = threading.Lock()  # one detector is shared by every camera thread in the worker

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    @property
    def batched(self) -> bool:
        """Whether all views go through the network in one run (a dynamic-batch export)."""
        return isinstance(self.inner, BatchDetector) and bool(self.inner.dynamic_batch)

    def _count(self, runs: int) -> None:
        with self._lock:
            self.runs += runs

    def detect(self, image: np.ndarray) -> sv.Detections:
        check_image(image)
        shown = [view_of(image, v) for v in self.views]
        if self.batched:
            assert isinstance(self.inner, BatchDetector)
            found = self.inner.detect_batch([s for s, _ in shown])
            self._count(1)
        else:
            found = [self.inner.detect(s) for s, _ in shown]
            self._count(len(shown))
        wh = (int(image.shape[1]), int(image.shape[0]))
        back = [view_back(f, v, placed, wh) for f, v, (_, placed) in zip(found, self.views, shown, strict=True)]
        return merge_views(back, self.iou_threshold)


class FlipTtaDetector(TtaDetector):
    """`TtaDetector` with the frame and its mirror ('flip')."""

    def __init__(self, inner: Detector, iou_threshold: float) -> None:
        super().__init__(inner, "flip", iou_threshold)


def tta_label(mode: str) -> str:
    """How reports name a mode: 'flip TTA', 'multiscale TTA', 'no TTA'."""
    return "no TTA" if mode == "none" else f"{mode} TTA"


def with_tta(detector: Detector, mode: str, iou_threshold: float) -> Detector:
    """`detector` with test-time augmentation `mode` ('none': unchanged; 'flip', 'multiscale': `TtaDetector`)."""
    if mode == "none":
        return detector
    if mode == "flip":
        return FlipTtaDetector(detector, iou_threshold)
    if mode in TTA_VIEWS:
        return TtaDetector(detector, mode, iou_threshold)
    raise ValueError(f"unknown TTA mode {mode!r}; use one of {list(TTA_MODES)}")
