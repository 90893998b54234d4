"""Frames from labelled clips: every N-th frame, near-duplicates skipped, labels kept for the kept frames.

A parked street camera sees the same picture for minutes; 500 copies of one frame teach a detector nothing and
swamp the rest. `FrameSampler` keeps a frame only when its 16x16 grey thumbnail differs from the last kept
one by at least `min_diff` grey levels (mean absolute difference, 0-255).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gridwatch.models.datasets.records import DatasetError

THUMB = 16


def thumbnail(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)


@dataclass
class FrameSampler:
    """Decides which frames to keep: every `every`-th, minus near-duplicates of the last kept frame."""

    every: int = 10
    min_diff: float = 2.0
    skipped_duplicates: int = 0
    _last: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise DatasetError(f"every: {self.every} must be >= 1 (take every N-th frame)")
        if self.min_diff < 0:
            raise DatasetError(f"min_diff: {self.min_diff} must be >= 0 (grey levels; 0 keeps every frame)")

    def reset(self) -> None:
        """Start a new clip: its first frame is never a duplicate of the previous clip's last."""
        self._last = None

    def wants(self, index: int) -> bool:
        return index % self.every == 0

    def keep(self, image: np.ndarray) -> bool:
        thumb = thumbnail(image)
        if self._last is not None and float(np.mean(np.abs(thumb - self._last))) < self.min_diff:
            self.skipped_duplicates += 1
            return False
        self._last = thumb
        return True


def frame_count(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened():
            raise DatasetError(f"cannot open video {video}; check the path (or the `video:` field) and the codec")
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


def sample_frames(
    video: Path, sampler: FrameSampler, wanted: Callable[[int], bool] | None = None,
    on_frame: Callable[[], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR frame) of the frames `sampler` keeps, decoded in order (no seeking: exact frame indices).

    `wanted(index)`: extra filter applied before the duplicate check (e.g. only frames inside the labelled
    range); `on_frame` is called once per decoded frame (progress)."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise DatasetError(f"cannot open video {video}; check the path (or the `video:` field) and the codec")
    try:
        index = 0
        while True:
            ok = cap.grab()
            if not ok:
                break
            if on_frame is not None:
                on_frame()
            if sampler.wants(index) and (wanted is None or wanted(index)):
                ok, frame = cap.retrieve()
                if ok and sampler.keep(frame):
                    yield index, frame
            index += 1
    finally:
        cap.release()


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DatasetError("JPEG encoding failed")
    return bytes(buf.tobytes())
