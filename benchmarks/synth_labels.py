"""The synthetic world's own labels as a detector, at any analysis rate, with some classes hidden.

A copy of tests/e2e/label_detector.py adapted for the incident benchmark (benchmarks/ must not import tests/):

* `stride`: the analysis keeps every `stride`-th frame (10 fps clip at 2 analysis fps -> 5), and labels are looked
  up by call count, so call n returns the labels of frame n * stride;
* `hidden`: class names the detector never reports. The benchmark hides `litter` (HIDDEN_CLASSES), so dropped
  bags, boxes and piles are objects no detector class covers: littering and exposed garbage can only come from
  the scene-change stage's `unknown_object` regions, which is the path the issue asks to measure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import supervision as sv

from gridwatch.models.base import ModelInfo, make_detections
from gridwatch.synth import CLASSES

HIDDEN_CLASSES: frozenset[str] = frozenset({"litter"})


def read_labels(path: Path) -> np.ndarray:
    """(n, 5) array of YOLO rows (class, cx, cy, w, h), normalised; empty file -> (0, 5)."""
    rows = [list(map(float, line.split())) for line in path.read_text().splitlines() if line.strip()]
    return np.array(rows, dtype=float).reshape(-1, 5)


class StridedLabelDetector:
    """`Detector` interface: detect(image) -> sv.Detections, from labels/NNNNNN.txt."""

    def __init__(self, labels_dir: Path, stride: int = 1, hidden: frozenset[str] = HIDDEN_CLASSES) -> None:
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.labels = sorted(labels_dir.glob("*.txt"))
        self.stride = stride
        self.hidden_ids = frozenset(i for i, name in enumerate(CLASSES) if name in hidden)
        self.info = ModelInfo("synth-labels", "1", "0" * 64, tuple(CLASSES), (0, 0), "labels")
        self._i = 0

    def detect(self, image: np.ndarray) -> sv.Detections:
        h, w = image.shape[:2]
        index = self._i * self.stride
        self._i += 1
        arr = read_labels(self.labels[index]) if index < len(self.labels) else np.zeros((0, 5))
        arr = arr[[int(c) not in self.hidden_ids for c in arr[:, 0]]].reshape(-1, 5)
        cx, cy, bw, bh = arr[:, 1] * w, arr[:, 2] * h, arr[:, 3] * w, arr[:, 4] * h
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        return make_detections(xyxy, np.full(len(arr), 0.9), arr[:, 0].astype(int), list(CLASSES))
