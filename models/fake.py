"""A scripted detector for testing the stages downstream of detection without a model.

fake = FakeDetector.from_boxes(
    [[(10, 10, 50, 40, "car", 0.9)], [], [(12, 10, 52, 40, "car", 0.8)]],
    class_names=("car", "person"),
)
fake.detect(frame.image)  # frame 1: one car; frame 2: nothing; frame 3: the car again; then `when_exhausted`
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import supervision as sv

from gridwatch.models.base import ModelInfo, check_image, make_detections

Box = tuple[float, float, float, float, str, float]  # x1, y1, x2, y2, class name, confidence

DEFAULT_CLASSES = ("car", "person", "litter", "stall", "wire")


def fake_info(class_names: Sequence[str] = DEFAULT_CLASSES) -> ModelInfo:
    """A ModelInfo that is obviously not a real model (sha256 of zeros)."""
    return ModelInfo(
        name="fake",
        version="0",
        sha256="0" * 64,
        class_names=tuple(class_names),
        input_size=(640, 640),
        decoder="fake",
    )


class FakeDetector:
    """Returns the i-th scripted `Detections` on the i-th call to `detect`.

    when_exhausted: what calls past the end of the script return: "empty" (no detections: the object
        left the scene), "repeat_last" (a static scene that goes on forever) or "raise" (IndexError, for tests
        that must not read more frames than they scripted).
    Each call returns a copy, so a stage that (wrongly) mutates its input cannot change the script. The shapes
    of the images received are recorded in `calls`.
    """

    def __init__(
        self,
        script: Iterable[sv.Detections],
        info: ModelInfo | None = None,
        when_exhausted: Literal["empty", "repeat_last", "raise"] = "empty",
    ) -> None:
        self.info = info or fake_info()
        self._script = [self._normalised(d) for d in script]
        self._when_exhausted = when_exhausted
        self.calls: list[tuple[int, ...]] = []
        self._lock = threading.Lock()  # one detector is shared by every camera thread in the worker

    @classmethod
    def from_boxes(
        cls,
        frames: Iterable[Iterable[Box]],
        class_names: Sequence[str] = DEFAULT_CLASSES,
        when_exhausted: Literal["empty", "repeat_last", "raise"] = "empty",
    ) -> FakeDetector:
        """Script from plain tuples ``(x1, y1, x2, y2, class_name, confidence)``, one list per call."""
        names = list(class_names)
        script = [_detections_from_boxes(list(boxes), names) for boxes in frames]
        return cls(script, info=fake_info(names), when_exhausted=when_exhausted)

    def detect(self, image: np.ndarray) -> sv.Detections:
        check_image(image)
        with self._lock:
            index = len(self.calls)
            self.calls.append(tuple(image.shape))
        if index < len(self._script):
            return _copy(self._script[index])
        if self._when_exhausted == "raise":
            raise IndexError(f"FakeDetector scripted {len(self._script)} calls, got call #{index + 1}")
        if self._when_exhausted == "repeat_last" and self._script:
            return _copy(self._script[-1])
        return _empty(self.info.class_names)

    def _normalised(self, detections: sv.Detections) -> sv.Detections:
        """Fill in what a real backend always provides (confidence, class_name) so fakes are not laxer."""
        n = len(detections)
        class_id = detections.class_id if detections.class_id is not None else np.zeros(n, dtype=np.int64)
        conf = detections.confidence if detections.confidence is not None else np.ones(n, dtype=np.float32)
        if n and (class_id.min() < 0 or class_id.max() >= len(self.info.class_names)):
            raise ValueError(f"scripted class ids {class_id.tolist()} outside info.class_names")
        return make_detections(detections.xyxy, conf, class_id, self.info.class_names)


def _detections_from_boxes(boxes: list[Box], names: list[str]) -> sv.Detections:
    unknown = sorted({b[4] for b in boxes} - set(names))
    if unknown:
        raise ValueError(f"scripted class names {unknown} are not in class_names {names}")
    xyxy = np.asarray([b[:4] for b in boxes], dtype=np.float32).reshape(-1, 4)
    conf = np.asarray([b[5] for b in boxes], dtype=np.float32)
    ids = np.asarray([names.index(b[4]) for b in boxes], dtype=np.int64)
    return make_detections(xyxy, conf, ids, names)


def _empty(class_names: Sequence[str]) -> sv.Detections:
    return make_detections(np.empty((0, 4)), np.empty(0), np.empty(0, dtype=np.int64), class_names)


def _copy(d: sv.Detections) -> sv.Detections:
    return sv.Detections(
        xyxy=d.xyxy.copy(),
        confidence=None if d.confidence is None else d.confidence.copy(),
        class_id=None if d.class_id is None else d.class_id.copy(),
        data={k: np.array(v, copy=True) for k, v in d.data.items()},
    )
