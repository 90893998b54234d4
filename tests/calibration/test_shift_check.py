"""Camera-shift check on a synthetic textured scene."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gridwatch.calibration.errors import CalibrationInputError, ShiftCheckError
from gridwatch.calibration.shift import ShiftDetector

H, W = 360, 480


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """Random rectangles and discs: plenty of corners for ORB, like facades, kerbs and signs."""
    rng = np.random.default_rng(0)
    img = np.full((H, W, 3), 90, np.uint8)
    for _ in range(70):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = (int(v) for v in rng.integers(0, [W, H]))
        dx, dy = (int(v) for v in rng.integers(5, 40, 2))
        cv2.rectangle(img, (x, y), (x + dx, y + dy), colour, -1)
        cx, cy = (int(v) for v in rng.integers(0, [W, H]))
        cv2.circle(img, (cx, cy), int(rng.integers(3, 20)), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    return img


@pytest.fixture(scope="module")
def detector(scene: np.ndarray) -> ShiftDetector:
    return ShiftDetector.from_reference(scene, max_features=500)


def _translate(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)


def test_same_frame_is_not_shifted(detector: ShiftDetector, scene: np.ndarray) -> None:
    res = detector.check(scene)
    assert not res.shifted and res.median_px < 0.5 and res.inliers >= 50


def test_twelve_pixel_shift_is_detected(detector: ShiftDetector, scene: np.ndarray) -> None:
    res = detector.check(_translate(scene, 12, 0))
    assert res.shifted
    assert res.median_px == pytest.approx(12.0, abs=1.0)
    assert res.inliers >= 30


def test_diagonal_shift_magnitude(detector: ShiftDetector, scene: np.ndarray) -> None:
    res = detector.check(_translate(scene, -6, 8))
    assert res.shifted and res.median_px == pytest.approx(10.0, abs=1.0)


def test_sub_threshold_jitter_and_noise_are_not_shifted(detector: ShiftDetector, scene: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    noisy = np.clip(_translate(scene, 1, 0).astype(np.int16) + rng.normal(0, 4, scene.shape), 0, 255)
    res = detector.check(noisy.astype(np.uint8))
    assert not res.shifted and res.median_px < 2.0


def test_moving_objects_do_not_count_as_shift(detector: ShiftDetector, scene: np.ndarray) -> None:
    frame = scene.copy()
    cv2.rectangle(frame, (40, 200), (160, 260), (20, 20, 200), -1)  # a car parked in the view
    assert not detector.check(frame).shifted


def test_featureless_frame_counts_as_shifted(detector: ShiftDetector) -> None:
    res = detector.check(np.zeros((H, W, 3), np.uint8))  # lens covered / camera turned to the sky
    assert res.shifted and res.median_px == float("inf")


def test_gray_frames_accepted(detector: ShiftDetector, scene: np.ndarray) -> None:
    assert not detector.check(cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY)).shifted


def test_featureless_reference_rejected() -> None:
    with pytest.raises(ShiftCheckError, match="ORB features"):
        ShiftDetector.from_reference(np.full((H, W, 3), 128, np.uint8))


def test_frame_size_mismatch_rejected(detector: ShiftDetector, scene: np.ndarray) -> None:
    with pytest.raises(CalibrationInputError, match="reference is"):
        detector.check(scene[:, :-10])
