"""The scene-change stage: one camera's frames -> `unknown_object` regions, beside the detector.

    frame -> downscale -> stabilise (warp to the reference view) -> dual background (persons/vehicles masked)
          -> regions (ghosts absorbed) -> Detections in frame coordinates

`SceneChangeStage.update(image, ts, tracks)` takes the previous frame's tracks (their persons and vehicles are
masked out) and returns a `SceneOutput`; `merge_regions(detections, regions)` puts the regions that no detector
box already covers beside the detector's detections, so they enter the tracker and the rules as ordinary
observations of class `unknown_object`. The stage does no I/O except one log warning when the view shifts too far.

Example:

    >>> import numpy as np
    >>> from gridwatch.edge.config import SceneChangeConfig
    >>> stage = SceneChangeStage(SceneChangeConfig(stabilise=False))
    >>> out = stage.update(np.zeros((90, 160, 3), np.uint8), 0.0)
    >>> len(out.regions), out.paused
    (0, False)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import supervision as sv

from gridwatch.calibration.ground import GroundMapping
from gridwatch.calibration.shift import ShiftResult
from gridwatch.edge.config import SceneChangeConfig
from gridwatch.edge.ignore import rasterise
from gridwatch.edge.scene.background import BackgroundParams, DualBackground
from gridwatch.edge.scene.regions import (
    Region,
    confidence,
    find_regions,
    is_departed_shadow,
    is_ghost,
    is_shadow,
    merge_fragments,
)
from gridwatch.edge.scene.stabilise import (
    IDENTITY,
    FloatArray,
    StabiliseParams,
    Stabiliser,
    boxes_to_frame,
    boxes_to_reference,
    is_identity,
    scale_registration,
    warp_to_reference,
)
from gridwatch.edge.scene.unstable import unstable_share
from gridwatch.pipelines.zones import Zone

log = logging.getLogger(__name__)

REGION_CLASS = "unknown_object"
REGION_FIELDS = ("region_area_m2", "region_elongation", "region_contrast", "region_age_s")
REGISTER_DOWNSCALE = 2
"""Registration runs on the work image shrunk this many times (160 px wide by default): half the cost of matching
at work resolution, and still sub-pixel at work resolution for the shifts of a swaying pole."""
WARN_AFTER_S = 1.0
"""The camera-shift warning is logged once the stage has been paused this long."""
FRAGMENT_GAP_PX = 8
"""Regions this close (work pixels, box to box) that came to rest together are one object (`merge_fragments`)."""
FRAGMENT_BIRTH_GAP_S = 1.0
"""... when their ages differ by at most this (one analysed frame at 1 fps)."""
KNOWN_OVERLAP = 0.5
"""A region that lies this much (share of its area) inside a detector box is that detection: it is not added."""


@dataclass(frozen=True)
class SceneOutput:
    """One frame's result. `regions`: Detections in frame pixels, class `unknown_object`, data fields
    `region_area_m2` (NaN without a ground mapping), `region_elongation`, `region_contrast`, `region_age_s`
    (seconds since the thing came to rest: this frame's time minus `region_age_s` is its drop), `source` =
    "scene". `shift_px`: the view's shift against the reference in frame pixels (inf when it could not be
    matched). `paused`: the shift could not be compensated and the stage skipped this frame.
    `relearnt`: the backgrounds were rebuilt (first frame, global light change, new reference)."""

    regions: sv.Detections
    shift_px: float
    paused: bool
    relearnt: bool


class SceneChangeStage:
    """Per-camera state of the scene-change stage (see the module docstring)."""

    def __init__(self, config: SceneChangeConfig, mapping: GroundMapping | None = None, camera_id: str = "",
                 ignore: tuple[Zone, ...] = ()) -> None:
        self.config = config
        self.ignore = ignore
        self._ignored: npt.NDArray[np.bool_] | None = None
        self.mapping = mapping
        self.camera_id = camera_id
        self.stabiliser = Stabiliser(StabiliseParams(
            max_shift_frac=config.max_shift_frac, min_inliers=config.min_inliers, settle_s=config.settle_s))
        self.background = DualBackground(BackgroundParams(
            min_static_s=config.min_static_s, short_term_s=config.short_term_s, long_term_s=config.long_term_s,
            diff_threshold=config.diff_threshold, relearn_fraction=config.relearn_fraction,
            absorb_after_s=config.absorb_after_s, flicker_window_s=config.flicker_window_s,
            flicker_changes=config.flicker_changes, chroma_threshold=config.chroma_threshold))
        self._mask_classes = frozenset(config.mask_classes)
        self._paused_since: float | None = None
        self._border: tuple[FloatArray, npt.NDArray[np.bool_] | None, tuple[int, int]] | None = None
        self._warned = False

    def update(self, image: npt.NDArray[np.uint8], ts: float, tracks: sv.Detections | None = None) -> SceneOutput:
        h, w = image.shape[:2]
        ww = min(self.config.work_width, w)
        wh = max(8, round(h * ww / w))
        scale = w / ww
        colour = None
        if self.config.chroma_threshold > 0 and image.ndim == 3:
            # colour at work resolution first: its grey costs a quarter of the full frame's, and halving it again
            # (a 2x2 area average, OpenCV's fast path) is the chroma's resolution
            small = image if (w, h) == (ww, wh) else cv2.resize(image, (ww, wh), interpolation=cv2.INTER_AREA)
            gray = np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
            colour = np.asarray(cv2.resize(small, (max(1, ww // 2), max(1, wh // 2)), interpolation=cv2.INTER_AREA),
                                dtype=np.uint8)
            # as BGRA: OpenCV warps four channels about three times faster than three (the same values; measured
            # 50-70 us against 160-170 us at 160x90), and the alpha plane is never read
            colour = np.asarray(cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA), dtype=np.uint8)
        else:
            full = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            gray = np.asarray(cv2.resize(full, (ww, wh), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        transform, shift, paused, reanchored = IDENTITY.copy(), ShiftResult(False, 0.0, 0), False, False
        if self.config.stabilise:
            rw, rh = max(16, ww // REGISTER_DOWNSCALE), max(16, wh // REGISTER_DOWNSCALE)
            small = np.asarray(cv2.resize(gray, (rw, rh), interpolation=cv2.INTER_AREA), dtype=np.uint8)
            reg = scale_registration(self.stabiliser.register(small, ts), ww / rw)
            transform, shift, paused, reanchored = reg.transform, reg.shift, reg.paused, reg.reanchored
        self._warn(paused, shift, scale, ts)
        if paused:
            return SceneOutput(_empty(), shift.median_px * scale, True, False)
        if reanchored:
            self.background.reset()
        warped = warp_to_reference(gray, transform)
        if colour is not None:
            half = transform.copy()
            half[:, 2] *= colour.shape[1] / ww
            colour = warp_to_reference(colour, half)
        masked = self._mask(tracks, transform, scale, (wh, ww))
        ignored = self._ignore_mask(scale, (wh, ww))
        border = self._outside_view(transform, (wh, ww))
        if border is not None:
            ignored = border if ignored is None else ignored | border
        bg = self.background.update(warped, masked, ts, ignored, colour)
        if bg.relearnt:
            return SceneOutput(_empty(), shift.median_px * scale, False, True)
        regions = find_regions(bg.established, bg.rest_s, bg.difference, self.config.min_area_px)
        if not regions:  # nothing established (most frames), or only specks: nothing to test
            return SceneOutput(_empty(), shift.median_px * scale, False, False)
        changed = bg.difference > self.config.diff_threshold
        regions = self._drop_ghosts(regions, warped, changed)  # first: a ghost is learnt in, flickering or not
        regions = [r for r in regions
                   if unstable_share(r.pixels, r.box, bg.unstable) < self.config.max_unstable_share]
        regions = self._drop_shadows(regions, warped)
        regions = merge_fragments(regions, FRAGMENT_GAP_PX, FRAGMENT_BIRTH_GAP_S)
        return SceneOutput(self._detections(regions, transform, scale), shift.median_px * scale, False, False)

    def _warn(self, paused: bool, shift: ShiftResult, scale: float, ts: float) -> None:
        """Log the camera-shift warning once per pause that lasts `WARN_AFTER_S` (a passing bus that hides the
        view for a frame is not a shifted camera), and log when the stage resumes."""
        if not paused:
            if self._warned:
                log.warning("camera %s: view registered again; scene-change stage resumes", self.camera_id)
            self._paused_since, self._warned = None, False
            return
        if self._paused_since is None:
            self._paused_since = ts
        if not self._warned and ts - self._paused_since >= WARN_AFTER_S:
            self._warned = True
            log.warning(
                "camera %s: camera shift: the view moved %.0f px (%d matched features) from its reference, more "
                "than the scene-change stage can compensate; the stage pauses until the view settles",
                self.camera_id, shift.median_px * scale, shift.inliers)

    def _ignore_mask(self, scale: float, shape: tuple[int, int]) -> npt.NDArray[np.bool_] | None:
        """The ignore polygons at work resolution (in the reference view), built once; None when there are none."""
        if not self.ignore:
            return None
        if self._ignored is None or self._ignored.shape != shape:
            self._ignored = rasterise(self.ignore, scale, shape)
        return self._ignored

    def _mask(self, tracks: sv.Detections | None, transform: FloatArray, scale: float,
              shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
        """Work-resolution mask of the tracked persons and vehicles (widened by `mask_margin`)."""
        out = np.zeros(shape, bool)
        if tracks is None or len(tracks) == 0:
            return out
        names = tracks.data.get("class_name")
        if names is None:
            return out
        keep = np.array([str(n) in self._mask_classes for n in names], dtype=bool)
        if not keep.any():
            return out
        boxes = boxes_to_reference(np.asarray(tracks.xyxy[keep], dtype=np.float64) / scale, transform)
        m = self.config.mask_margin
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        grown = np.stack([boxes[:, 0] - m * bw, boxes[:, 1] - m * bh, boxes[:, 2] + m * bw, boxes[:, 3] + m * bh], 1)
        h, w = shape
        for x1, y1, x2, y2 in grown:
            xa, ya = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
            xb, yb = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
            if xb > xa and yb > ya:
                out[ya:yb, xa:xb] = True
        return out

    def _outside_view(self, transform: FloatArray, shape: tuple[int, int]) -> npt.NDArray[np.bool_] | None:
        """`outside_view`, recomputed only when the transform moved the frame's corners by a tenth of a pixel."""
        h, w = shape
        corners = np.array([[0.0, 0.0], [w, 0.0], [0.0, h], [w, h]]) @ transform[:, :2].T + transform[:, 2]
        cached = self._border
        if cached is not None and cached[2] == shape and float(np.abs(cached[0] - corners).max()) < 0.1:
            return cached[1]
        border = outside_view(transform, shape)
        self._border = (corners, border, shape)
        return border

    def _drop_ghosts(self, regions: list[Region], warped: npt.NDArray[np.uint8],
                     changed: npt.NDArray[np.bool_]) -> list[Region]:
        """Learn the ghosts in (`regions.is_ghost`, its ring without the `changed` pixels) and keep the rest."""
        long_term = self.background.long_term
        if not regions or long_term is None:
            return regions
        gray_now = warped
        gray_before = np.clip(long_term, 0, 255).astype(np.uint8)
        kept: list[Region] = []
        for region in regions:
            if is_ghost(region, gray_now, gray_before, self.config.ghost_contrast_ratio, changed=changed):
                self._absorb(region, gray_now.shape)
            else:
                kept.append(region)
        return kept

    def _drop_shadows(self, regions: list[Region], warped: npt.NDArray[np.uint8]) -> list[Region]:
        long_term = self.background.long_term
        if not regions or long_term is None:
            return regions
        before = np.clip(long_term, 0, 255).astype(np.uint8)
        kept: list[Region] = []
        for r in regions:
            if is_departed_shadow(r, warped, before, self.config.shadow_ratio):
                self._absorb(r, warped.shape)  # the ground as it is: learnt, as a ghost is
            elif not is_shadow(r, warped, before, self.config.shadow_ratio):
                kept.append(r)
        return kept

    def _absorb(self, region: Region, shape: tuple[int, ...]) -> None:
        full = np.zeros(shape[:2], bool)
        x1, y1, x2, y2 = region.box
        full[y1:y2, x1:x2] = region.pixels
        self.background.absorb(full)

    def _detections(self, regions: list[Region], transform: FloatArray, scale: float) -> sv.Detections:
        if not regions:
            return _empty()
        work = np.array([r.box for r in regions], dtype=np.float64)
        # A region that starts within the background's edge margin of the top is cut by the frame's top edge as far
        # as the stage can tell (a thin piece, a hanging cable, is never kept closer to the edge): its box says so,
        # for the rules' "cut by the top of the frame" test (overhead, not on the ground).
        work[work[:, 1] <= self.background.params.edge_margin_px, 1] = 0.0
        boxes = boxes_to_frame(work, transform) * scale
        cfg = self.config
        return sv.Detections(
            xyxy=boxes.astype(np.float32),
            confidence=np.array([confidence(r, cfg.min_static_s, cfg.diff_threshold) for r in regions], np.float32),
            class_id=np.full(len(regions), -1, dtype=np.int64),
            data={
                "class_name": np.array([REGION_CLASS] * len(regions)),
                "region_area_m2": np.array([self._area_m2(r, transform, scale) for r in regions], np.float64),
                "region_elongation": np.array([r.elongation for r in regions], np.float64),
                "region_contrast": np.array([r.contrast for r in regions], np.float64),
                "region_age_s": np.array([r.age_s for r in regions], np.float64),
                "source": np.array(["scene"] * len(regions)),
            },
        )

    def _area_m2(self, region: Region, transform: FloatArray, scale: float) -> float:
        """Ground area of the region's minimum-area rectangle (a flat object on the ground); NaN if unmapped."""
        if self.mapping is None:
            return float("nan")
        corners = np.asarray(cv2.boxPoints(region.rect), dtype=np.float64)
        px = (corners @ transform[:, :2].T + transform[:, 2]) * scale
        if not bool(np.all(self.mapping.is_ground(px))):
            return float("nan")
        enu = np.asarray(self.mapping.pixel_to_enu(px), dtype=np.float64)
        x, y = enu[:, 0], enu[:, 1]
        return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def outside_view(transform: FloatArray, shape: tuple[int, int], margin_px: int = 2,
                 ) -> npt.NDArray[np.bool_] | None:
    """Work pixels of the reference view that the warped frame does not cover (plus `margin_px`, where
    interpolation mixes in the refilled border: two, one pixel of the half-resolution chroma); None for the
    identity (nothing is refilled).

    `warp_to_reference` fills them by replicating the frame's edge: rows and columns that change with every
    shift of a shaking camera and are no scene at all, so they are masked like the ignore zones (found on the
    synthetic shake scenarios: the refilled edge became thin static pieces along the frame's edge)."""
    if is_identity(transform):
        return None
    h, w = shape
    covered = cv2.warpAffine(np.full((h, w), 255, np.uint8), transform, (w, h),
                             flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0)
    outside = np.asarray(covered, dtype=np.uint8) == 0
    if not outside.any():
        return None
    if margin_px > 0:
        k = np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8)
        outside = np.asarray(cv2.dilate(outside.view(np.uint8), k), dtype=bool)
    return outside


def _empty() -> sv.Detections:
    """No regions, with every region field: copies of one template (built once; most frames have no region)."""
    e = _EMPTY
    return sv.Detections(xyxy=e.xyxy.copy(), confidence=None if e.confidence is None else e.confidence.copy(),
                         class_id=None if e.class_id is None else e.class_id.copy(),
                         data={k: np.asarray(v).copy() for k, v in e.data.items()})


def _with_fields(detections: sv.Detections, source: str, like: sv.Detections | None = None) -> sv.Detections:
    """A copy of `detections` carrying every region field (NaN where absent) and `source`, so it merges; with
    `like`, also every other data field `like` has (NaN for numbers, "" for text: the detectors' `detector` name
    and `detection_age_s`, which regions do not have)."""
    n = len(detections)
    data: dict[str, npt.NDArray[Any] | list[Any]] = {k: np.asarray(v).copy() for k, v in detections.data.items()}
    for key, column in (like.data.items() if like is not None else ()):
        if key not in data:
            text = np.asarray(column).dtype.kind in "USO"
            data[key] = np.array([""] * n, dtype=str) if text else np.full(n, np.nan, dtype=np.float64)
    data.setdefault("class_name", np.empty(0, dtype=str) if n == 0 else np.array(["?"] * n))
    for name in REGION_FIELDS:
        data.setdefault(name, np.full(n, np.nan, dtype=np.float64))
    data.setdefault("source", np.array([source] * n) if n else np.empty(0, dtype=str))
    return sv.Detections(
        xyxy=np.asarray(detections.xyxy, dtype=np.float32).reshape(-1, 4),
        confidence=np.ones(n, np.float32) if detections.confidence is None else detections.confidence.copy(),
        class_id=np.full(n, -1, np.int64) if detections.class_id is None else detections.class_id.copy(),
        tracker_id=None if detections.tracker_id is None else detections.tracker_id.copy(),
        data=data,
    )


_EMPTY = _with_fields(sv.Detections.empty(), "scene")


def merge_regions(detections: sv.Detections, regions: sv.Detections,
                  covering: frozenset[str] | None = None) -> sv.Detections:
    """The detector's detections plus the regions no detector box covers (a region that lies mostly inside a
    known-class box is that object: the detector's class wins, nothing is duplicated). Inputs are not mutated.

    `covering`: the classes that may stand for a region, the ones a rule reads (`gridwatch.edge.config.
    read_classes`); None = every class. A detection of a class no rule reads would otherwise hide the region
    from every rule: YOLOX-Nano calls a green bag set down on real paving a "sports ball"."""
    if len(regions) == 0:
        return detections
    keep = np.ones(len(regions), bool)
    covers = detections
    if covering is not None and len(detections):
        names = detections.data.get("class_name")
        which = np.array([names is not None and str(names[i]) in covering for i in range(len(detections))], bool)
        read = detections[which]
        assert isinstance(read, sv.Detections)
        covers = read
    if len(covers):
        r, d = np.asarray(regions.xyxy, np.float64), np.asarray(covers.xyxy, np.float64)
        ix = np.clip(np.minimum(r[:, None, 2], d[None, :, 2]) - np.maximum(r[:, None, 0], d[None, :, 0]), 0, None)
        iy = np.clip(np.minimum(r[:, None, 3], d[None, :, 3]) - np.maximum(r[:, None, 1], d[None, :, 1]), 0, None)
        area = np.maximum((r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1]), 1e-9)
        keep = ((ix * iy) / area[:, None]).max(axis=1) < KNOWN_OVERLAP
    if not keep.any():
        return detections
    kept = regions[keep]
    assert isinstance(kept, sv.Detections)
    return sv.Detections.merge([_with_fields(detections, "detector"), _with_fields(kept, "scene", like=detections)])
