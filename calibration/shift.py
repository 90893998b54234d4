"""Camera-shift check: has the camera moved since it was calibrated?

A ground homography is only valid for the exact view it was fitted on. A camera that is bumped, re-aimed or
loosened by wind maps every pixel to the wrong place on the map, silently, and incidents go to the wrong grid
cell. This check compares a frame with the reference frame saved at calibration time: ORB features matched
between the two, a robust similarity transform (RANSAC, so moving cars and people are outliers), and the
median displacement of the matched reference points under it. Static scenery dominates a street view, so a
moved camera shows up as a consistent displacement of many points.

Run it rarely (every few minutes) and alarm only on several consecutive `shifted` results: rain, night and
crowds also reduce the number of matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from gridwatch.calibration.errors import CalibrationInputError, ShiftCheckError

FloatArray = npt.NDArray[np.float64]
UInt8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ShiftResult:
    """`median_px` is the median displacement of matched reference points (inf when too few matched)."""

    shifted: bool
    median_px: float
    inliers: int


class ShiftDetector:
    """Compares frames with a reference view; `check` says whether the camera has moved.

    `threshold_px`: median displacement above which the view counts as moved. The detector's own noise is a
    fraction of a pixel; 3-5 px is where a calibration starts to misplace far-away objects by metres.
    `min_inliers`: fewer RANSAC-consistent matches than this means the view no longer resembles the
    reference (re-aimed, covered, or lens dirty), which is reported as shifted with `median_px = inf`.
    """

    def __init__(
        self,
        keypoints: FloatArray,
        descriptors: UInt8Array,
        image_size: tuple[int, int],
        max_features: int = 500,
        threshold_px: float = 4.0,
        min_inliers: int = 15,
        ratio: float = 0.8,
    ) -> None:
        self._kp = keypoints
        self._desc = descriptors
        self._size = image_size
        self._orb = cv2.ORB.create(nfeatures=max_features)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self.threshold_px = threshold_px
        self.min_inliers = min_inliers
        self.ratio = ratio

    @classmethod
    def from_reference(
        cls,
        ref_bgr: npt.NDArray[Any],
        max_features: int = 500,
        mask: npt.NDArray[np.uint8] | None = None,
        threshold_px: float = 4.0,
        min_inliers: int = 15,
    ) -> ShiftDetector:
        """Build from the reference frame saved at calibration time.

        `mask` (uint8, non-zero = use) can exclude areas that change (the road itself, trees, a screen) so
        features come from buildings, kerbs and poles.
        """
        gray = _gray(ref_bgr)
        orb = cv2.ORB.create(nfeatures=max_features)
        kps, desc = orb.detectAndCompute(gray, mask)
        if desc is None or len(kps) < 2 * min_inliers:
            raise ShiftCheckError(
                f"reference frame has {len(kps)} ORB features, need >= {2 * min_inliers}: "
                "pick a frame with more visible structure (daylight, no fog) or a smaller mask"
            )
        pts = np.array([kp.pt for kp in kps], dtype=np.float64)
        h, w = gray.shape
        return cls(pts, np.asarray(desc, dtype=np.uint8), (w, h), max_features, threshold_px, min_inliers)

    def check(self, frame_bgr: npt.NDArray[Any]) -> ShiftResult:
        """Compare one frame (same size as the reference) with the reference view."""
        gray = _gray(frame_bgr)
        h, w = gray.shape
        if (w, h) != self._size:
            raise CalibrationInputError(f"frame is {w}x{h}, reference is {self._size[0]}x{self._size[1]}")
        kps, desc = self._orb.detectAndCompute(gray, None)
        if desc is None or len(kps) < self.min_inliers:
            return ShiftResult(shifted=True, median_px=float("inf"), inliers=0)
        pts = np.array([kp.pt for kp in kps], dtype=np.float64)
        src, dst = self._matched_points(np.asarray(desc, dtype=np.uint8), pts)
        return self._judge(src, dst)

    def _matched_points(self, desc: UInt8Array, pts: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Reference/frame point pairs passing Lowe's ratio test (drops ambiguous, repetitive texture)."""
        pairs = self._matcher.knnMatch(self._desc, desc, k=2)
        good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < self.ratio * m[1].distance]
        src = np.array([self._kp[m.queryIdx] for m in good], dtype=np.float64).reshape(-1, 2)
        dst = np.array([pts[m.trainIdx] for m in good], dtype=np.float64).reshape(-1, 2)
        return src, dst

    def _judge(self, src: FloatArray, dst: FloatArray) -> ShiftResult:
        if len(src) < self.min_inliers:
            return ShiftResult(shifted=True, median_px=float("inf"), inliers=len(src))
        transform, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0)
        n_in = 0 if mask is None else int(mask.sum())
        if transform is None or n_in < self.min_inliers:
            return ShiftResult(shifted=True, median_px=float("inf"), inliers=n_in)
        inl = src[mask.ravel().astype(bool)]
        moved = inl @ transform[:, :2].T + transform[:, 2]
        median = float(np.median(np.linalg.norm(moved - inl, axis=1)))
        return ShiftResult(shifted=median > self.threshold_px, median_px=median, inliers=n_in)


def _gray(img: npt.NDArray[Any]) -> UInt8Array:
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise CalibrationInputError(f"expected a uint8 BGR or gray image, got {arr.dtype} {arr.shape}")
    if arr.ndim == 2:
        return arr.astype(np.uint8, copy=False)
    return np.asarray(cv2.cvtColor(arr, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
