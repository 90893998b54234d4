"""A detector that returns the synthetic world's own labels: the perfect detector, behind the real interface.

It lets the demo scenario test the rules, tracking, calibration and delivery without depending on how well the
small demo model was trained (that is measured separately, in benchmarks/demo_model.py). Frames must be analysed
in order and all of them (analysis_fps >= the clip's fps), since labels are looked up by call count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import supervision as sv

from gridwatch.models.base import ModelInfo, make_detections
from gridwatch.synth import CLASSES


class LabelDetector:
    def __init__(self, labels_dir: Path) -> None:
        self.labels = sorted(labels_dir.glob("*.txt"))
        self.info = ModelInfo("synth-labels", "1", "0" * 64, tuple(CLASSES), (0, 0), "labels")
        self._i = 0

    def detect(self, image: np.ndarray) -> sv.Detections:
        h, w = image.shape[:2]
        rows = []
        if self._i < len(self.labels):
            text = self.labels[self._i].read_text().split("\n")
            rows = [list(map(float, line.split())) for line in text if line.strip()]
        self._i += 1
        arr = np.array(rows, dtype=float).reshape(-1, 5)
        cx, cy, bw, bh = arr[:, 1] * w, arr[:, 2] * h, arr[:, 3] * w, arr[:, 4] * h
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        return make_detections(xyxy, np.full(len(arr), 0.9), arr[:, 0].astype(int), list(CLASSES))
