"""Regions: established static foreground -> measured regions, with ghosts told apart from new objects.

A region is a connected blob of pixels that have been static for `min_static_s` (`background.DualBackground`),
at least `min_area_px` work pixels large. Each region carries its box, age (s: how long ago it came to rest, the
median over its established pixels of how long each has shown what it shows now), elongation (long / short side of
its minimum-area rectangle, or of the band it forms when that is longer: a bent cable, `band_elongation`), contrast
against the long-term background (0-1) and, on a calibrated camera, its area in square metres (`set_region_area`,
done by the stage in frame coordinates).

**Ghosts.** When something that was part of the long-term background leaves (a parked car drives off), the
revealed kerb differs from the long-term background and agrees with the short-term one: it looks exactly like a
new static object. What tells them apart is which image the region fits into: the revealed kerb continues the
road around it in the current frame, where the departed car stood out from it in the long-term background; a
new object is the other way round. `is_ghost` predicts the region from the unchanged pixels around it in both
images and compares the misfits.

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
    # Closed and labelled inside the established pixels' box grown by twice the closing's reach (what the
    # closing writes lies within its reach, and what it reads within twice), its corner on even coordinates (the
    # labelling scans 2x2 blocks, and numbers blobs in the order its blocks meet them): the same blobs, numbered
    # in the same order, on a fraction of the frame.
    bx, by, bw, bh = cv2.boundingRect(np.ascontiguousarray(established).view(np.uint8))
    fh, fw = established.shape
    ox, oy = max(0, bx - 2 * CLOSE_REACH_PX) & ~1, max(0, by - 2 * CLOSE_REACH_PX) & ~1
    ex, ey = min(fw, bx + bw + 2 * CLOSE_REACH_PX), min(fh, by + bh + 2 * CLOSE_REACH_PX)
    k = 2 * CLOSE_REACH_PX + 1
    closed = cv2.morphologyEx(established[oy:ey, ox:ex].astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    ltype = cv2.CV_16U if closed.size < 65535 else cv2.CV_32S  # 16-bit labels where they cannot overflow
    n, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8, ltype=ltype)
    out: list[Region] = []
    for i in range(1, n):
        lx, ly, w, h, area = (int(v) for v in stats[i])
        if area < min_area_px:
            continue
        crop = labels[ly:ly + h, lx:lx + w] == i
        x, y = lx + ox, ly + oy
        ys, xs = np.nonzero(crop)
        pts = np.stack([xs + x, ys + y], axis=1).astype(np.float32)
        rect = cv2.minAreaRect(pts)
        (cx, cy), (rw, rh), angle = rect
        long_side, short_side = max(rw, rh) + 1.0, min(rw, rh) + 1.0
        elongation = max(long_side / short_side, band_elongation(fill_holes(crop)))
        out.append(Region(
            box=(x, y, x + w, y + h),
            rect=((float(cx), float(cy)), (float(rw) + 1.0, float(rh) + 1.0), float(angle)),
            pixels=crop,
            age_s=_rest_age(rest_s[y:y + h, x:x + w], crop & established[y:y + h, x:x + w], crop),
            elongation=float(elongation),
            contrast=float(min(1.0, difference[y:y + h, x:x + w][crop].mean() / 255.0)),
        ))
    return out


CLOSE_REACH_PX = 2
"""`find_regions` closes the established pixels with a (2 r + 1)-square: gaps up to 2 r pixels are bridged."""


def merge_fragments(regions: list[Region], gap_px: int, birth_gap_s: float) -> list[Region]:
    """Regions that came to rest together (ages within `birth_gap_s`) and lie within `gap_px` of each other (box to
    box) merged into one: the pieces of one object. A bag whose colour matches the ground in grey level shows only
    its darker parts and outline, and the owner's mask covers its middle longest, so it is established as two or
    three blobs; each would be reported, one incident counted twice. Two things set down at once side by side
    are one incident too."""
    out = list(regions)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if abs(a.age_s - b.age_s) <= birth_gap_s and _box_gap(a.box, b.box) <= gap_px:
                    out[i] = _union(a, b)
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out


def _box_gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Pixels between two boxes (0 when they touch or overlap), the larger of the horizontal and vertical gaps."""
    return max(0, max(a[0], b[0]) - min(a[2], b[2]), max(a[1], b[1]) - min(a[3], b[3]))


def _union(a: Region, b: Region) -> Region:
    x1, y1 = min(a.box[0], b.box[0]), min(a.box[1], b.box[1])
    x2, y2 = max(a.box[2], b.box[2]), max(a.box[3], b.box[3])
    pixels = np.zeros((y2 - y1, x2 - x1), bool)
    for r in (a, b):
        pixels[r.box[1] - y1:r.box[3] - y1, r.box[0] - x1:r.box[2] - x1] |= r.pixels
    ys, xs = np.nonzero(pixels)
    (cx, cy), (rw, rh), angle = cv2.minAreaRect(np.stack([xs + x1, ys + y1], axis=1).astype(np.float32))
    long_side, short_side = max(rw, rh) + 1.0, min(rw, rh) + 1.0
    na, nb = int(a.pixels.sum()), int(b.pixels.sum())
    return Region(
        box=(x1, y1, x2, y2),
        rect=((float(cx), float(cy)), (float(rw) + 1.0, float(rh) + 1.0), float(angle)),
        pixels=pixels,
        age_s=max(a.age_s, b.age_s),
        elongation=float(max(long_side / short_side, band_elongation(fill_holes(pixels)))),
        contrast=float((a.contrast * na + b.contrast * nb) / max(1, na + nb)),
    )


def fill_holes(pixels: Mask) -> Mask:
    """`pixels` with every hole (background not connected to the crop's border) filled.

    A thing is measured by its outline, not by what of it differs from the ground: a bag whose middle matches
    the paving is established as a ring (its darker rim and contact shadow), and a ring is a long thin band to
    `band_elongation` (composite footage: the second piece of a bag reported as a fallen wire). Filled, it is the
    compact blob it is; a cable, bent or straight, has no holes and is unchanged."""
    if pixels.size == 0:
        return pixels
    padded = np.pad(pixels, 1).astype(np.uint8)
    reached = padded.copy()
    mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(reached, mask, (0, 0), 2)
    return np.asarray(reached[1:-1, 1:-1] != 2, dtype=bool)


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


MIN_KNOWN_PX = 12
"""Fewer unchanged pixels than this around a region: its surroundings are predicted from every pixel around it."""


def is_ghost(region: Region, frame_gray: npt.NDArray[np.uint8], long_term_gray: npt.NDArray[np.uint8],
             contrast_ratio: float, ring_px: int = 5, changed: Mask | None = None) -> bool:
    """True when the region fits its surroundings better in the current frame than it did in the long-term
    background: what stood out has left (a ghost), rather than arrived.

    In each image the region is predicted from the pixels around it (within `ring_px`; OpenCV's inpainting, so
    each region pixel from the ground *next to it*) and the fit is the median absolute difference between the
    region and that prediction. A departed car's kerb continues the road around it now and did not then; a new
    bag is the other way round. Local, not one median of a whole ring: a bag set down beside a dark manhole
    cover has a ring half dark and half light, whose median lies between the two, as far from the bare ground
    that was there as from the bag (seen on composite footage: a new bag taken for a ghost and learnt in).

    The surroundings are the pixels both images share: `changed` pixels (frame-sized mask: differing from the
    long-term background now) are predicted too, not predicted from, while at least `MIN_KNOWN_PX` others
    remain. Otherwise the first established fragment of a new bag, surrounded by the rest of the bag that is not
    established yet, fits that better than the ground did, and the bag is judged a ghost; a person passing by
    skews it the same way. A ghost's surroundings are unchanged ground either way (what left was inside the
    region)."""
    x1, y1, x2, y2 = region.box
    h, w = frame_gray.shape
    pad = ring_px + 2
    ax1, ay1, ax2, ay2 = max(0, x1 - pad), max(0, y1 - pad), min(w, x2 + pad), min(h, y2 + pad)
    mask = np.zeros((ay2 - ay1, ax2 - ax1), np.uint8)
    mask[y1 - ay1:y2 - ay1, x1 - ax1:x2 - ax1] = region.pixels.astype(np.uint8)
    inner = np.asarray(cv2.dilate(mask, np.ones((3, 3), np.uint8)), dtype=bool)
    outer = np.asarray(cv2.dilate(mask, np.ones((2 * ring_px + 3, 2 * ring_px + 3), np.uint8)), dtype=bool)
    hole = inner | ~outer  # beyond the ring is neither predicted from nor scored
    if changed is not None:
        unchanged = hole | changed[ay1:ay2, ax1:ax2]
        if int((~unchanged).sum()) >= MIN_KNOWN_PX:
            hole = unchanged
    if hole.all():
        return False
    own = mask.astype(bool)
    now, before = frame_gray[ay1:ay2, ax1:ax2], long_term_gray[ay1:ay2, ax1:ax2]
    return bool(_misfit(now, hole, own) < contrast_ratio * _misfit(before, hole, own))


def _misfit(image: npt.NDArray[np.uint8], hole: Mask, own: Mask) -> float:
    """Median absolute difference between `image` and its prediction from the pixels outside `hole`, on `own`."""
    predicted = cv2.inpaint(np.ascontiguousarray(image), hole.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return float(np.median(np.abs(image[own].astype(np.float32) - predicted[own].astype(np.float32))))


SHADOW_SEARCH_PX = 2
"""The shadow test compares the frame with the background shifted by up to this many work pixels each way."""
SHADOW_PEAK_PX = 1
"""... and the best match must lie this close to the registered position (the stabiliser's residual error)."""


def is_shadow(region: Region, frame_gray: npt.NDArray[np.uint8], long_term_gray: npt.NDArray[np.uint8],
              ratio: tuple[float, float], min_correlation: float = 0.6) -> bool:
    """True when the region is the background darkened: its brightness ratio to the long-term background is in
    `ratio` and, where the background has texture, the texture is the same *and in place* (`texture_in_place`).

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
    return texture_in_place(region, frame_gray, long_term_gray) >= min_correlation


def texture_in_place(region: Region, frame_gray: npt.NDArray[np.uint8], long_term_gray: npt.NDArray[np.uint8],
                     search_px: int = SHADOW_SEARCH_PX, peak_px: int = SHADOW_PEAK_PX) -> float:
    """The correlation of the region's pixels in the frame with the background at the registered position, or -1
    when the texture match is not in place: the background shifted by more than `peak_px` (up to `search_px`)
    correlates better than every shift within `peak_px` does.

    A shadow keeps the ground's texture in place: the correlation peaks at the registered position, give or take
    the stabiliser's residual error (a pixel on a shaking camera). An object correlates with the ground only by
    chance, through smooth shading (a dark bag's ramp and its contact shadow against the paving's gradient, a
    ground edge it hides), and such a correlation keeps growing as the background is shifted further: its peak
    is not in place. Measured on real paving (the ABODA clip, still and with a hand-held pan and shake):
    synthetic cast shadows, blob and pole-thin, peak within 1 px in 95-100 % of frames; the real dropped bag,
    whose correlation at the registered position reads 0.42-0.67 under shake (the 0.6 cutoff let it pass as a
    shadow in some frames), never does. The score itself stays the correlation at the registered position: the
    best of nine shifts would inflate a chance correlation (a bag on a squashed 640x360 view went from 0.59 to
    0.73 that way)."""
    x1, y1 = region.box[:2]
    h, w = frame_gray.shape[:2]
    ys, xs = np.nonzero(region.pixels)
    ys, xs = ys + y1, xs + x1
    f = frame_gray[ys, xs].astype(np.float32)
    f -= f.mean()
    fn = float(np.sqrt(np.dot(f, f)))
    if fn < 1e-6:
        return -1.0
    nominal, best_near, best_far = -1.0, -1.0, -1.0
    for dy in range(-search_px, search_px + 1):
        yy = np.clip(ys + dy, 0, h - 1)
        for dx in range(-search_px, search_px + 1):
            b = long_term_gray[yy, np.clip(xs + dx, 0, w - 1)].astype(np.float32)
            b -= b.mean()
            bn = float(np.sqrt(np.dot(b, b)))
            c = float(np.dot(f, b)) / (fn * bn) if bn > 1e-6 else -1.0
            if dx == 0 and dy == 0:
                nominal = c
            if max(abs(dx), abs(dy)) <= peak_px:
                best_near = max(best_near, c)
            else:
                best_far = max(best_far, c)
    return nominal if best_near >= best_far else -1.0


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
