"""Regions: established static foreground -> measured regions, with ghosts told apart from new objects.

A region is a connected blob of pixels that have been static for `min_static_s` (`background.DualBackground`),
at least `min_area_px` work pixels large. Each region carries its box, age (s: how long ago it came to rest, the
median over its established pixels of how long each has shown what it shows now), elongation (long / short side of
its minimum-area rectangle, or of the band it forms when that is longer: a bent cable, `band_elongation`), contrast
against the long-term background (0-1) and, on a calibrated camera, its area in square metres (`set_region_area`,
done by the stage in frame coordinates).

**Ghosts.** When something that was part of the long-term background leaves (a parked car drives off), the
revealed kerb differs from the long-term background and agrees with the short-term one: it looks exactly like a
new static object. What tells them apart is where the outline is: a new object brings its own edges, so the
region's boundary is sharper in the current frame than in the long-term background; a ghost's outline is the
departed object's, sharp in the long-term background and gone from the current frame, where the road's texture
runs straight through. `is_ghost` compares the mean gradient along the boundary in both images.

**Shadows**, arrived (`is_shadow`: the background darkened, texture kept) or departed (`is_departed_shadow`: the
long-term background held a shadow that has gone, so the ground is the long-term brightened).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Region:
    """One static region in work-resolution reference coordinates (`pixels` is its mask, cropped to `box`)."""

    box: tuple[int, int, int, int]
    """x1, y1, x2, y2 (exclusive) in work pixels."""
    rect: tuple[tuple[float, float], tuple[float, float], float]
    """cv2.minAreaRect of the region's pixels (centre, size, angle), work pixels."""
    pixels: Mask
    age_s: float
    """Seconds since the thing came to rest (the median `rest_s` of its established pixels, so at least the
    stage's `min_static_s`): the region's birth is ts - age_s."""
    elongation: float
    contrast: float


def find_regions(established: Mask, rest_s: F32, difference: F32, min_area_px: int) -> list[Region]:
    """The connected blobs of `established` at least `min_area_px` pixels large, measured (`rest_s`: seconds each
    pixel has shown what it shows now, `background.BackgroundResult.rest_s`)."""
    if not established.any():  # most frames of a quiet street: nothing to label
        return []
    closed = cv2.morphologyEx(established.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    out: list[Region] = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < min_area_px:
            continue
        crop = labels[y:y + h, x:x + w] == i
        ys, xs = np.nonzero(crop)
        pts = np.stack([xs + x, ys + y], axis=1).astype(np.float32)
        rect = cv2.minAreaRect(pts)
        (cx, cy), (rw, rh), angle = rect
        long_side, short_side = max(rw, rh) + 1.0, min(rw, rh) + 1.0
        elongation = max(long_side / short_side, band_elongation(crop))
        out.append(Region(
            box=(x, y, x + w, y + h),
            rect=((float(cx), float(cy)), (float(rw) + 1.0, float(rh) + 1.0), float(angle)),
            pixels=crop,
            age_s=_rest_age(rest_s[y:y + h, x:x + w], crop & established[y:y + h, x:x + w], crop),
            elongation=float(elongation),
            contrast=float(min(1.0, difference[y:y + h, x:x + w][crop].mean() / 255.0)),
        ))
    return out


def band_elongation(pixels: Mask) -> float:
    """Length over width of a blob taken as a rectangular band, bent or straight, so a fallen cable that runs
    down from its pole and along the kerb measures as long and thin as it is, where its minimum-area rectangle
    (an L or an arc fills a square) calls it compact.

    A t x L rectangle's mean distance to its outline is t / 4 - t² / (12 L) (a square's: side / 6); with its area
    A = t L that gives t from the blob's area and mean distance (the distance transform), whatever the blob's
    bends, and the elongation A / t². A compact blob (a bag, a pile) measures about 1, ragged outline or not."""
    area = int(pixels.sum())
    if area == 0:
        return 1.0
    padded = np.pad(pixels, 1).astype(np.uint8)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    mean = max(0.0, float(dist[padded > 0].mean()) - 0.5)  # pixel centres: an edge pixel is 1 from outside
    side = math.sqrt(area)
    if mean >= side / 6.0:
        return 1.0
    lo, hi = 0.0, side  # t / 4 - t³ / (12 A) rises from 0 to side / 6 on [0, side]
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if mid / 4.0 - mid ** 3 / (12.0 * area) < mean:
            lo = mid
        else:
            hi = mid
    width = max(hi, 1.0)
    return max(1.0, area / (width * width))


def _rest_age(rest_s: F32, established: Mask, pixels: Mask) -> float:
    """Median `rest_s` of the region's established pixels (of all its pixels if closing left none)."""
    return float(np.median(rest_s[established if established.any() else pixels]))


def is_ghost(region: Region, frame_gray: npt.NDArray[np.uint8], long_term_gray: npt.NDArray[np.uint8],
             contrast_ratio: float, ring_px: int = 5) -> bool:
    """True when the region stands out from its surroundings less in the current frame than it did in the
    long-term background: what stood out has left (a ghost), rather than arrived.

    Contrast is the difference of medians between the region and a ring `ring_px` wide around it, in each
    image. Medians of areas, not edges: robust to the blur of a warped (stabilised) frame and to people passing
    through part of the ring."""
    x1, y1, x2, y2 = region.box
    h, w = frame_gray.shape
    pad = ring_px + 2
    ax1, ay1, ax2, ay2 = max(0, x1 - pad), max(0, y1 - pad), min(w, x2 + pad), min(h, y2 + pad)
    mask = np.zeros((ay2 - ay1, ax2 - ax1), np.uint8)
    mask[y1 - ay1:y2 - ay1, x1 - ax1:x2 - ax1] = region.pixels.astype(np.uint8)
    inner = np.asarray(cv2.dilate(mask, np.ones((3, 3), np.uint8)), dtype=bool)
    outer = np.asarray(cv2.dilate(mask, np.ones((2 * ring_px + 3, 2 * ring_px + 3), np.uint8)), dtype=bool)
    ring = outer & ~inner
    own = mask.astype(bool)
    if not ring.any():
        return False
    now, before = frame_gray[ay1:ay2, ax1:ax2], long_term_gray[ay1:ay2, ax1:ax2]
    stands_out_now = abs(float(np.median(now[own])) - float(np.median(now[ring])))
    stood_out_before = abs(float(np.median(before[own])) - float(np.median(before[ring])))
    return bool(stands_out_now < contrast_ratio * stood_out_before)


def is_shadow(region: Region, frame_gray: npt.NDArray[np.uint8], long_term_gray: npt.NDArray[np.uint8],
              ratio: tuple[float, float], min_correlation: float = 0.6) -> bool:
    """True when the region is the background darkened: its brightness ratio to the long-term background is in
    `ratio` and, where the background has texture, the texture is the same (frame and background correlate).

    Texture is what separates a dark bag on grey paving (smooth, uncorrelated with the paving) from a shadow."""
    x1, y1, x2, y2 = region.box
    f = frame_gray[y1:y2, x1:x2][region.pixels].astype(np.float32)
    b = long_term_gray[y1:y2, x1:x2][region.pixels].astype(np.float32)
    r = float((f.sum() + 1.0) / (b.sum() + 1.0))
    if not ratio[0] <= r <= ratio[1]:
        return False
    if float(b.std()) < 4.0:  # a plain background stays plain under a shadow; texture that appears is a thing
        return float(f.std()) < 6.0
    if float(f.std()) < 1e-3:
        return False
    return float(np.corrcoef(f, b)[0, 1]) >= min_correlation


def is_departed_shadow(region: Region, frame_gray: npt.NDArray[np.uint8], long_term_gray: npt.NDArray[np.uint8],
                       ratio: tuple[float, float], min_texture: float = 4.0) -> bool:
    """True when the long-term background holds a shadow that has left: the region is the background brightened
    back (the long-term is the frame darkened by a ratio in `ratio`, texture correlated). A van parked when the
    camera started leaves its shadow in the long-term background; when it drives off, the lane line it shaded
    comes back brighter and stands out from the dark road: the ghost test cannot tell it, this can.

    Only for textured regions: a plain light thing on plain darker ground is just as much "the background
    brightened", and the stage errs towards reporting it."""
    x1, y1, x2, y2 = region.box
    if float(frame_gray[y1:y2, x1:x2][region.pixels].std()) < min_texture:
        return False
    return is_shadow(region, long_term_gray, frame_gray, ratio)


def confidence(region: Region, min_static_s: float, diff_threshold: float) -> float:
    """In [0, 1]: half persistence (reaches 1 at twice `min_static_s`), half contrast (1 at 3x the threshold)."""
    persistence = min(1.0, region.age_s / (2.0 * min_static_s))
    contrast = min(1.0, region.contrast * 255.0 / (3.0 * diff_threshold))
    return float(np.clip(0.5 * persistence + 0.5 * contrast, 0.0, 1.0))
