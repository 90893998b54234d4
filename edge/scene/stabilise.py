"""Stabilise: register each analysed frame to the camera's reference view.

Poles sway and some cameras pan slightly; a background model on an unregistered image sees every edge move and
reports it as change. ORB features of a small grey image are matched to the reference view's, a similarity
transform (rotation, scale, shift) is fitted with RANSAC (people and cars are outliers), and the frame is warped
into the reference view before background modelling. The shift (median displacement of the matched reference
points, in work-resolution pixels, as in `gridwatch.calibration.shift`) is reported per frame.

A shift larger than `max_shift_frac` of the image diagonal, or fewer than `min_inliers` consistent matches for
longer than `grace_s` (a passing bus hides the scenery for a moment), cannot be compensated: `paused` is set (the
scene stage pauses, the camera keeps running). A view that matches the reference again resumes at once. Otherwise
the view must stay steady (frame to frame) for `settle_s` seconds; it becomes the new reference and `reanchored`
tells the caller to relearn its backgrounds. So a camera moved for good recovers on its own. While registered, the
reference features are renewed every `refresh_s` from the frame warped into the reference view.

**Anchored renewals.** A renewal takes its features from a frame warped by a fitted transform, which is off by a
fraction of a pixel; renewing from a renewed reference would add those errors up (measured on a shaking synthetic
camera: a 4 px, 2.8 % zoom drift after a few minutes, whose refilled frame edge looked like a new object). So each
renewal is registered once more to the *anchor*, the view the backgrounds were started on (first frame or settled
view), and its points are moved into the anchor's coordinates: the errors no longer chain. A renewal that the
anchor does not confirm (too few matches, or a correction of more than `renew_tolerance_px`) is skipped.

**Tracked, then matched.** Each frame is first registered by tracking corners of the anchor image (Shi-Tomasi,
found once per anchor) into it with pyramidal Lucas-Kanade optical flow (forward, then back as a check) and the
same RANSAC fit. That skips detecting and describing the frame's own features and matching them, about half of
registration's cost, and it is more exact (on three real clips under a known synthetic shake and pan: median
corner error 0.12 px at 160 px wide, at most 0.35, against 0.56 and up to 20 px by matching). Tracking starts
from the anchor itself, never from a renewal: a renewal's points are placed by a fit with up to
`renew_tolerance_px` of error, which every tracked frame would then repeat (measured on the highway clip: a steady
0.6 px offset, and lane edges as regions). When tracking gives no usable fit (fewer than `TRACK_MIN_INLIERS`
times `min_inliers` consistent points, or a shift beyond `max_shift_frac`: a large move, a bus, a light change
the flow cannot follow, scenery no longer like the anchor's) the frame is registered by ORB feature matching to
the (renewed) reference exactly as before, so every pause, grace and settle decision that matching made is still
made by it. While paused, only matching is used. The frame's own features are computed lazily when a later step
needs them (the steady test when a pause begins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from gridwatch.calibration.shift import ShiftResult

FloatArray = npt.NDArray[np.float64]
IDENTITY: FloatArray = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class StabiliseParams:
    """max_shift_frac: largest compensated shift as a share of the diagonal. min_inliers: least RANSAC-consistent
    matches. settle_s: steady time after a pause before the current view becomes the reference. max_features:
    ORB features per frame (more is steadier and slower). steady_px: frame-to-frame motion below which the view
    counts as steady while paused. grace_s: how long too few matches (the scenery hidden by a bus, a crowd, a plain
    synthetic scene) keep the last transform before the stage pauses; a measured large shift pauses at once.
    refresh_s: how often a well-registered frame, warped into the reference view, renews the reference features
    (the slow re-anchoring: scenery that parked cars hid, the light of another hour). renew_tolerance_px: the
    largest correction (px at the image corners) a renewal's fit to the anchor may make; a larger one means a
    wrong fit, and the renewal is skipped."""

    max_shift_frac: float = 0.08
    min_inliers: int = 12
    settle_s: float = 5.0
    max_features: int = 150
    steady_px: float = 1.5
    grace_s: float = 2.0
    refresh_s: float = 10.0
    renew_tolerance_px: float = 1.5
    track: bool = True
    """Register by tracking the reference points (optical flow) first, ORB matching as the fallback; False =
    ORB matching on every frame."""


@dataclass(frozen=True)
class Registration:
    """One frame's registration. `transform` maps reference coordinates to frame coordinates (2x3, work scale);
    `shift` is the median displacement of matched points (`ShiftResult.median_px`, inf when unmatched)."""

    transform: FloatArray
    shift: ShiftResult
    paused: bool
    reanchored: bool


@dataclass
class _View:
    points: FloatArray
    descriptors: npt.NDArray[np.uint8]


TRACK_WINDOW = (9, 9)
"""Lucas-Kanade window (pixels of the registration image, 160 px wide by default). Larger windows cost more
(the flow's cost grows with the window's area) and measured no more accurate."""
TRACK_LEVELS = 1
"""Pyramid levels above the image: follows moves of about 10 px at 160 px wide, most of the largest compensated
shift (14.7 px); a larger move fails to track and is measured by feature matching. Two levels measured slower
and, on the highway clip's vibration, less steady."""
TRACK_BACK_PX = 0.5
"""A tracked point counts only when tracking it back lands this close to where it started."""
TRACK_MIN_INLIERS = 2
"""A tracked fit is used only with at least this many times `min_inliers` consistent points; otherwise the frame
is matched. Optical flow's failure is a consistent one: beyond its reach it can stop short on every point alike
(seen without a pyramid level: a 9 px move at 160 px wide fitted 13 px off with 13 inliers). With a level no
shift of 0-21 px in a sweep was fitted wrong; this is the margin. The real clips track with 22-85 inliers."""
TRACK_POINTS = 80
"""At most this many anchor points are tracked (the flow's cost grows with the points)."""
TRACK_QUALITY = 0.05
"""The tracked points are Shi-Tomasi corners of the anchor image (`cv2.goodFeaturesToTrack`) whose smaller
gradient eigenvalue is at least this share of the strongest's: corners, not edges. A point on a straight edge
(a lane line, a kerb) is free to slide along it, and on a synthetic night street ORB's points, many of them on
such lines, slid alike and fitted 2-5 px shifts of a still view with 24-29 consistent points; the matched fit
held identity."""
TRACK_SPACING_PX = 5.0
"""... at least this far apart (registration pixels), so they spread over the view."""
_TRACK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)


@dataclass
class _Tracked:
    """The anchor as optical flow needs it: its image and its corners to track (float32, N x 1 x 2)."""

    image: npt.NDArray[np.uint8]
    start: npt.NDArray[np.float32]


class Stabiliser:
    """Registers grey work-resolution frames to a reference view (the first frame, or the settled one)."""

    def __init__(self, params: StabiliseParams | None = None) -> None:
        self.params = params or StabiliseParams()
        # Few pyramid levels and small patches: the view changes by a few pixels and degrees, not by scale, and
        # this keeps registration near 1 ms on a 160 px wide image (measured; 8 levels cost twice as much).
        self._orb = cv2.ORB.create(nfeatures=self.params.max_features, fastThreshold=10, nlevels=3,
                                   scaleFactor=1.3, edgeThreshold=15, patchSize=15)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
        self._ref: _View | None = None
        self._anchor: _View | None = None
        self._prev: _View | None = None
        self._paused = False
        self._steady_since: float | None = None
        self._unmatched_since: float | None = None
        self._last: FloatArray = IDENTITY.copy()
        self._ref_ts = 0.0
        self._tracked: _Tracked | None = None  # the anchor for optical flow (None: match features)
        self._prev_gray: npt.NDArray[np.uint8] | None = None  # the last frame, whose features `_prev` lacks

    @property
    def paused(self) -> bool:
        return self._paused

    def register(self, gray: npt.NDArray[np.uint8], ts: float) -> Registration:
        h, w = gray.shape
        limit = self.params.max_shift_frac * float(np.hypot(w, h))
        if (self.params.track and not self._paused and self._tracked is not None and self._ref is not None
                and len(self._ref.points) >= 2 * self.params.min_inliers):
            transform, shift = self._track(gray)
            if transform is not None and shift.inliers >= TRACK_MIN_INLIERS * self.params.min_inliers \
                    and shift.median_px <= limit:
                self._prev, self._prev_gray = None, gray  # its features only if a later step needs them
                return self._registered(gray, transform, shift, ts)
        view = self._features(gray)
        if self._ref is None or len(self._ref.points) < 2 * self.params.min_inliers:
            # A view too plain to register (empty asphalt, night, fog) cannot show a shift either: run
            # unregistered. A later view with enough structure becomes the reference only once the next frame
            # confirms it (matches it steadily): features on a passing car must not become the reference.
            first = self._ref is None
            if first or self._confirmed(view):
                self._set_anchor(view, gray)
                self._ref_ts = ts
            self._prev, self._prev_gray = view, gray
            return Registration(IDENTITY.copy(), ShiftResult(False, 0.0, len(view.points)), False, first)
        transform, shift = self._fit(self._ref, view)
        ok = transform is not None and shift.inliers >= self.params.min_inliers and shift.median_px <= limit
        if ok:  # registered (again: an occluded or briefly shaken view that returns needs no relearning)
            assert transform is not None
            self._prev, self._prev_gray = view, gray
            return self._registered(gray, transform, shift, ts)
        if transform is None and not self._paused:
            # Too few matches, not a measured large shift: a bus or a crowd hides the scenery. Keep the last
            # transform for `grace_s` before treating it as a lost view.
            if self._unmatched_since is None:
                self._unmatched_since = ts
            if ts - self._unmatched_since < self.params.grace_s:
                return Registration(self._last.copy(), shift, False, False)
        # Paused (or pausing now): wait until the view holds still, then make it the reference.
        prev = self._previous_view()
        moved = self._fit(prev, view)[1] if prev is not None else None
        p = self.params
        steady = moved is not None and moved.inliers >= p.min_inliers and moved.median_px <= p.steady_px
        self._prev, self._prev_gray = view, gray
        if not self._paused:
            self._paused, self._steady_since = True, None
        if not steady:
            self._steady_since = None
        elif self._steady_since is None:
            self._steady_since = ts
        if self._steady_since is not None and ts - self._steady_since >= self.params.settle_s:
            self._set_anchor(view, gray)
            self._paused, self._steady_since, self._ref_ts = False, None, ts
            return Registration(IDENTITY.copy(), ShiftResult(False, 0.0, len(view.points)), False, True)
        return Registration(IDENTITY.copy(), ShiftResult(True, shift.median_px, shift.inliers), True, False)

    def _registered(self, gray: npt.NDArray[np.uint8], transform: FloatArray, shift: ShiftResult,
                    ts: float) -> Registration:
        """The frame registered to the reference (tracked or matched): remember it, renew the reference when due."""
        self._paused, self._steady_since, self._unmatched_since = False, None, None
        self._last = transform
        if ts - self._ref_ts >= self.params.refresh_s:
            self._refresh(gray, transform, ts)
        return Registration(transform, shift, False, False)

    def _previous_view(self) -> _View | None:
        """The previous frame's features, detected now if tracking registered it without them."""
        if self._prev is None and self._prev_gray is not None:
            self._prev = self._features(self._prev_gray)
        return self._prev

    def _set_anchor(self, view: _View, image: npt.NDArray[np.uint8]) -> None:
        """`view` (the features of `image`) becomes the reference and the anchor, and `image` what optical flow
        tracks from."""
        self._ref = self._anchor = view
        self._tracked = None
        if self.params.track and len(view.points) >= 2 * self.params.min_inliers:
            corners = cv2.goodFeaturesToTrack(image, TRACK_POINTS, TRACK_QUALITY, TRACK_SPACING_PX, blockSize=5)
            if corners is not None and len(corners) >= 2 * self.params.min_inliers:
                self._tracked = _Tracked(image, np.ascontiguousarray(corners, dtype=np.float32).reshape(-1, 1, 2))

    def _track(self, gray: npt.NDArray[np.uint8]) -> tuple[FloatArray | None, ShiftResult]:
        """The anchor's points followed into `gray` by optical flow (forward, then back to check) and fitted."""
        ref = self._tracked
        assert ref is not None
        moved, found = _flow(ref.image, gray, ref.start)
        back, found_back = _flow(gray, ref.image, moved)
        err = np.abs(back - ref.start).reshape(-1, 2).max(axis=1)
        good = (found.ravel() > 0) & (found_back.ravel() > 0) & (err <= TRACK_BACK_PX)
        n = int(np.count_nonzero(good))
        if n < self.params.min_inliers:
            return None, ShiftResult(True, float("inf"), n)
        src = ref.start.reshape(-1, 2)[good].astype(np.float64)
        return self._fit_points(src, moved.reshape(-1, 2)[good].astype(np.float64))

    def _confirmed(self, view: _View) -> bool:
        """`view` has enough structure and matches the previous view without moving (static scenery)."""
        prev = self._previous_view()
        if len(view.points) < 2 * self.params.min_inliers or prev is None:
            return False
        _, moved = self._fit(prev, view)
        return moved.inliers >= self.params.min_inliers and moved.median_px <= self.params.steady_px

    def _refresh(self, gray: npt.NDArray[np.uint8], transform: FloatArray, ts: float) -> None:
        """New reference features from this frame warped into the reference view: the scenery that parked cars
        hid, lighting of a new hour; the reference coordinates (and so the backgrounds) stay the same."""
        self._ref_ts = ts  # renewed or not, the next attempt is `refresh_s` away
        view = self._features(warp_to_reference(gray, transform))
        if len(view.points) < 2 * self.params.min_inliers:
            return
        anchored = self._anchored(view, gray.shape[:2])
        if anchored is not None:
            self._ref = anchored

    def _anchored(self, view: _View, shape: tuple[int, ...]) -> _View | None:
        """`view` (features of a frame warped into the reference view) with its points moved into the anchor's
        coordinates by its own fit to the anchor (see the module docstring). None when the anchor cannot be
        matched (rain, a crowd: 9 inliers on a rainy synthetic scene, where renewing unchecked moved the reference
        by an 8 % zoom) or when the two disagree by more than `renew_tolerance_px` at the image corners (a few
        features on something that moves): renewing from such a frame would move the reference, so the renewal
        waits for the next `refresh_s`. A view that no longer matches the anchor at all soon fails to register
        too, and then settles into a new reference and anchor with relearnt backgrounds (the camera-shift path)."""
        if self._anchor is None:
            return view
        residual, fit = self._fit(self._anchor, view)  # anchor -> warped frame: the fitting error left over
        if residual is None or fit.inliers < self.params.min_inliers:
            return None
        h, w = shape
        corners = np.array([[0.0, 0.0], [w, 0.0], [0.0, h], [w, h]])
        moved = corners @ residual[:, :2].T + residual[:, 2]
        if float(np.linalg.norm(moved - corners, axis=1).max()) > self.params.renew_tolerance_px:
            return None
        back = np.asarray(cv2.invertAffineTransform(residual), dtype=np.float64)
        return _View(view.points @ back[:, :2].T + back[:, 2], view.descriptors)

    def _features(self, gray: npt.NDArray[np.uint8]) -> _View:
        kps, desc = self._orb.detectAndCompute(gray, None)
        if desc is None:
            return _View(np.zeros((0, 2)), np.zeros((0, 32), dtype=np.uint8))
        return _View(np.asarray(cv2.KeyPoint.convert(kps), dtype=np.float64).reshape(-1, 2),
                     np.asarray(desc, dtype=np.uint8))

    def _fit(self, ref: _View, cur: _View) -> tuple[FloatArray | None, ShiftResult]:
        if len(ref.points) < self.params.min_inliers or len(cur.points) < self.params.min_inliers:
            return None, ShiftResult(True, float("inf"), 0)
        matches = self._matcher.match(ref.descriptors, cur.descriptors)
        if len(matches) < self.params.min_inliers:
            return None, ShiftResult(True, float("inf"), len(matches))
        n = len(matches)
        src = ref.points[np.fromiter((m.queryIdx for m in matches), np.intp, n)]
        dst = cur.points[np.fromiter((m.trainIdx for m in matches), np.intp, n)]
        return self._fit_points(src, dst)

    def _fit_points(self, src: FloatArray, dst: FloatArray) -> tuple[FloatArray | None, ShiftResult]:
        """RANSAC similarity from reference points `src` to frame points `dst`, and the median shift of its
        inliers (None when fewer than `min_inliers` agree)."""
        transform, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.5)
        n_in = 0 if mask is None else int(mask.sum())
        if transform is None or n_in < self.params.min_inliers:
            return None, ShiftResult(True, float("inf"), n_in)
        inl = src[mask.ravel().astype(bool)]
        moved = inl @ transform[:, :2].T + transform[:, 2]
        median = _median(np.linalg.norm(moved - inl, axis=1))
        return np.asarray(transform, dtype=np.float64), ShiftResult(False, median, n_in)


def _flow(prev: npt.NDArray[np.uint8], nxt: npt.NDArray[np.uint8], points: npt.NDArray[np.float32],
          ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Lucas-Kanade: where `points` of `prev` lie in `nxt` (N x 1 x 2) and whether each was found (N x 1)."""
    moved, found, _ = cv2.calcOpticalFlowPyrLK(prev, nxt, points, np.empty(0, np.float32), winSize=TRACK_WINDOW,
                                               maxLevel=TRACK_LEVELS, criteria=_TRACK_CRITERIA)
    return np.asarray(moved, dtype=np.float32), np.asarray(found, dtype=np.uint8)


def _median(values: FloatArray) -> float:
    """`np.median` of a non-empty 1-D array by one partition, without its overhead."""
    k = values.size // 2
    if values.size % 2:
        return float(np.partition(values, k)[k])
    part = np.partition(values, (k - 1, k))
    return 0.5 * (float(part[k - 1]) + float(part[k]))


def scale_registration(reg: Registration, factor: float) -> Registration:
    """`reg` measured on an image `factor` times smaller, expressed for the larger image (shift and translation
    grow by `factor`; rotation and scale do not change)."""
    t = reg.transform.copy()
    t[:, 2] *= factor
    shift = ShiftResult(reg.shift.shifted, reg.shift.median_px * factor, reg.shift.inliers)
    return Registration(t, shift, reg.paused, reg.reanchored)


_IDENTITY_TOLERANCE = 1e-3 + 1e-5 * np.abs(IDENTITY)


def is_identity(transform: FloatArray) -> bool:
    """`np.allclose(transform, IDENTITY, atol=1e-3)` without its overhead (called several times per frame)."""
    return bool((np.abs(transform - IDENTITY) <= _IDENTITY_TOLERANCE).all())


def warp_to_reference(image: npt.NDArray[Any], transform: FloatArray) -> npt.NDArray[Any]:
    """`image` (frame coordinates) resampled into the reference view; identity is returned unchanged."""
    if is_identity(transform):
        return image
    h, w = image.shape[:2]
    out = cv2.warpAffine(image, transform, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out)


def boxes_to_frame(xyxy: FloatArray, transform: FloatArray) -> FloatArray:
    """Axis-aligned boxes in reference coordinates -> frame coordinates (bounding box of the moved corners)."""
    return _move_boxes(xyxy, transform)


def boxes_to_reference(xyxy: FloatArray, transform: FloatArray) -> FloatArray:
    """Axis-aligned boxes in frame coordinates -> reference coordinates."""
    return _move_boxes(xyxy, np.asarray(cv2.invertAffineTransform(transform), dtype=np.float64))


def _move_boxes(xyxy: FloatArray, transform: FloatArray) -> FloatArray:
    if len(xyxy) == 0:
        return np.asarray(xyxy, dtype=np.float64).reshape(0, 4)
    x1, y1, x2, y2 = (np.asarray(xyxy, dtype=np.float64)[:, i] for i in range(4))
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x1, y2], 1),
                        np.stack([x2, y2], 1)], 1)  # (N, 4, 2)
    moved = corners @ transform[:, :2].T + transform[:, 2]
    return np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
