"""Checks on a written review video that look at the pictures, not the file size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_video(path: Path) -> tuple[int, np.ndarray]:
    """(frames decoded, the middle frame) of `path`, decoding every frame with OpenCV."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"OpenCV cannot open {path}"
    frames: list[np.ndarray] = []
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            frames.append(image)
    finally:
        cap.release()
    assert frames, f"{path} has no decodable frame"
    return len(frames), frames[len(frames) // 2]


def assert_review_video(path: Path, frames: int, width: int, height: int) -> None:
    """`frames` frames of `width` x `height`, and the middle one shows a picture (not a blank or flat frame)."""
    count, middle = read_video(path)
    assert count == frames, f"{path}: {count} frames, expected {frames}"
    assert middle.shape == (height, width, 3), middle.shape
    assert float(middle.std()) > 10.0, f"{path}: the middle frame is flat (std {middle.std():.1f})"
    assert len(np.unique(middle.reshape(-1, 3), axis=0)) > 100, f"{path}: the middle frame has almost no colours"


def last_frame(path: Path) -> np.ndarray:
    """The last decodable frame of `path`."""
    cap = cv2.VideoCapture(str(path))
    last: np.ndarray | None = None
    try:
        while (got := cap.read())[0]:
            last = got[1]
    finally:
        cap.release()
    assert last is not None, f"{path} has no decodable frame"
    return last


def magenta_pixels(image: np.ndarray, box: tuple[float, float, float, float], pad: int = 4) -> int:
    """Pixels of the review video's scene-change colour (magenta, after lossy compression) in `box` + `pad`."""
    h, w = image.shape[:2]
    x1, y1 = max(0, int(box[0]) - pad), max(0, int(box[1]) - pad)
    x2, y2 = min(w, int(box[2]) + pad), min(h, int(box[3]) + pad)
    crop = image[y1:y2, x1:x2].astype(np.int16)
    b, g, r = crop[..., 0], crop[..., 1], crop[..., 2]
    return int(((r > 170) & (b > 170) & (g < 110)).sum())
