"""Dual background: what changed in the view and then stayed.

Two running-average backgrounds at work resolution (measured: about 1 ms per frame at 320x180, cheaper and
easier to control than two MOG2 models, whose learning rate counts frames rather than seconds):

- the **short-term** background follows the frame within `short_term_s` seconds, everywhere;
- the **long-term** background follows slowly (`long_term_s`) and only where the frame agrees with it, so a thing
  that arrives and stays is never learnt into it.

A pixel that differs from the long-term background but agrees with the short-term one is *static foreground*,
provided it **arrived**: since it last matched the long-term background it differed from both backgrounds at once
(moving foreground: something was carried in, set down, or drove up), or, under a tracked person's box, stepped by
more than the threshold from one frame to the next (where a person stood, the short-term background holds their
legs, and a bag as dark as their trousers set down there differs from it too little; it still steps from the ground
the frame before showed). This is the moving -> static sequence of dual-background abandoned-object detectors
(Heras Evangelio and Sikora's state machine). A pixel whose look creeps away from the long-term background without
ever stepping (a cloud's shadow crossing foliage, white balance drifting over a coloured wall) never moved, so it
never counts. Each pixel counts how long it has been static (seconds of capture time); a pixel that has been static
for `min_static_s` belongs to a region (`gridwatch.edge.scene.regions`).

**Since when.** The short-term background needs a moment to take a new thing in (about `short_term_s *
ln(contrast / diff_threshold)`: 2-3 s for a dark bag on grey paving), so "static" starts late. When a thing
arrived is known at once, though: its pixels jump by more than the threshold from one frame to the next (beyond
the frames' global gain) and then hold the new value. Each foreground pixel counts how long it has held what
arrived on it, in view (`seen`) and including time under a mask (`held`). On the first static frame after an
arrival the pixel's age is credited with its `seen` hold, once; from then on it accumulates and decays as
before. So a thing is established `min_static_s` after it came to rest, not after the short-term background
caught up, and a pixel that keeps dropping out of "static" gains nothing. `rest_s` (at least the age, at least
the `held` hold) says when the thing came to rest: a bag set down beside its owner holds its value while the
owner's box covers it, so its region is born at the drop. A slow drift out of the background (a gain change,
dusk) is no arrival: it only gains the accumulated static age, as before; nor is what appears where the
long-term background was never confirmed (a car in the first frame, or in the frame of a relearn, that drives
off: the ghost test's business).

Failure modes handled here:

- masked boxes (tracked persons and vehicles) never start to count: their pixels are reset unless they already
  belonged to an established region (a passer-by occluding a left bag does not erase it);
- a global brightness change is removed first (per-channel median offset between frame and background), and a
  change over more than `relearn_fraction` of the frame at once (street lights, auto exposure) relearns both
  backgrounds instead of reporting regions;
- shadows, arrived or departed, are told apart per region (`regions.is_shadow`, `regions.is_departed_shadow`),
  where texture can be compared;
- noise (rain, compression): a grey-level threshold, a 3x3 opening of the static mask, and a minimum region area;
- pixels that keep changing (burnt-in clocks, swaying trees, blinking lights) are marked *unstable*
  (`gridwatch.edge.scene.unstable`); the stage drops a region that is mostly unstable. They are not cut out of
  static foreground pixel by pixel: that splits a ghost (a revealed kerb under passing traffic) into fragments
  the ghost test cannot judge (seen on the highway clip);
- `ignored` pixels (the camera's configured ignore masks) are never foreground, never counted, and take no part
  in the global brightness estimate.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from gridwatch.edge.scene.chroma import ChromaBackground, ChromaDifference
from gridwatch.edge.scene.unstable import FlickerMask, FlickerParams

F32 = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]

_KERNEL = np.ones((3, 3), np.uint8)
_NOTHING = np.float32(-1e9)
"""A hold's value where nothing arrived: stays negative for any realistic run time."""


@dataclass(frozen=True)
class BackgroundParams:
    """See `gridwatch.edge.config.SceneChangeConfig` for what each knob does."""

    min_static_s: float = 3.0
    short_term_s: float = 1.5
    long_term_s: float = 600.0
    diff_threshold: float = 20.0
    relearn_fraction: float = 0.35
    absorb_after_s: float = 3600.0
    max_gap_s: float = 5.0
    """A gap between frames longer than this counts as this long (a stalled stream must not jump ages)."""
    flicker_window_s: float = 15.0
    flicker_changes: float = 2.5
    chroma_threshold: float = 0.15
    """Chroma difference ((R-G)/Y or (B-G)/Y) that counts as 'different' like `diff_threshold` grey levels do; 0
    turns the chroma path off."""
    thin_length_px: float = 20.0
    """A static piece too thin for the 3x3 opening (a cable one or two work pixels wide) is kept when it is at
    least this long (its box's diagonal, work pixels): noise is speckle, a cable is a line."""
    edge_margin_px: int = 4
    """... and does not come within this many work pixels of the frame's edge, where the stabiliser's resampling
    and the frame's own border leave lines that change with every shift (nothing there can be measured whole)."""
    chroma_grey: tuple[float, float] = (48.0, 225.0)
    """Grey levels (frame and long-term background both) between which chroma is measured: below, a few grey
    levels of sensor noise swing the ratios by more than the threshold; above, a saturated channel clips them."""


@dataclass(frozen=True)
class BackgroundResult:
    """`established`: pixels static for at least `min_static_s`; `age_s`: seconds each pixel has been static;
    `rest_s`: seconds each pixel has shown what it shows now (at least `age_s`; for a static pixel, how long ago
    the thing on it came to rest, masked time included); `difference`: grey-level difference to the long-term
    background (offset-corrected); `unstable`: pixels that keep changing (`gridwatch.edge.scene.unstable`);
    `relearnt`: the backgrounds were rebuilt on this frame (global change), so nothing is reported."""

    established: Mask
    age_s: F32
    rest_s: F32
    difference: F32
    unstable: Mask
    relearnt: bool


class DualBackground:
    """Long- and short-term backgrounds of grey uint8 work-resolution frames (already stabilised).

    Grey first: a dropped bag, a pile or a wire differs from the ground in brightness far more often than in hue
    alone. With a half-resolution colour frame (`update(colour=...)`) the chroma difference joins the grey one
    (`gridwatch.edge.scene.chroma`): every difference below is the larger of the two."""

    def __init__(self, params: BackgroundParams | None = None) -> None:
        self.params = params or BackgroundParams()
        self._long: F32 | None = None
        self._short: F32 | None = None
        self._age: F32 | None = None
        self._anchor: F32 | None = None
        self._anchor_offset: F32 | None = None
        self._prev: F32 | None = None
        self._held: F32 | None = None
        self._seen: F32 | None = None
        self._confirmed: Mask | None = None
        self._left_early: Mask | None = None
        self._started = 0.0
        self._nothing: F32 = np.empty((0, 0), np.float32)  # constants of the frame's shape, for `_put`
        self._offset_plane: F32 = np.empty((0, 0), np.float32)  # scratch: the frame's global offset, per pixel
        self._zeros: F32 = np.empty((0, 0), np.float32)
        self._arrived: Mask | None = None
        self._ts: float | None = None
        self._n = 0  # frames since the backgrounds were (re)built
        self._thin: Mask | None = None
        p = self.params
        self.flicker = FlickerMask(FlickerParams(p.flicker_window_s, p.flicker_changes, p.diff_threshold))
        self.chroma = ChromaBackground(p.chroma_threshold, p.diff_threshold, p.chroma_grey) \
            if p.chroma_threshold > 0 else None

    @property
    def long_term(self) -> F32 | None:
        return self._long

    def reset(self) -> None:
        """Forget everything: the next frame starts both backgrounds (after a camera shift settled)."""
        self._long = self._short = self._age = self._anchor = self._prev = self._held = self._seen = None
        self._anchor_offset = None
        self._confirmed = self._arrived = self._left_early = None
        self._ts = None
        self.flicker.reset()
        if self.chroma is not None:
            self.chroma.reset()

    def absorb(self, region: Mask) -> None:
        """Learn `region` into the long-term background now (a ghost, or a region old enough to be scenery)."""
        if self._long is None or self._short is None or self._age is None:
            return
        self._long[region] = self._short[region]
        self._age[region] = 0.0
        if self._held is not None and self._seen is not None:
            _put(self._held, self._nothing, region)
            _put(self._seen, self._nothing, region)
        if self._confirmed is not None:
            self._confirmed |= region  # the long-term now holds what is there
        if self.chroma is not None:
            self.chroma.absorb(region)

    def update(self, frame: npt.NDArray[np.uint8], masked: Mask, ts: float,
               ignored: Mask | None = None, colour: npt.NDArray[np.uint8] | None = None) -> BackgroundResult:
        """One frame: `masked` pixels (tracked persons and vehicles) never start to count; `ignored` pixels (the
        camera's ignore masks, the stabiliser's warp border) never count at all. `colour`: the same frame in BGR
        (or BGRA) at half the work resolution, for the chroma difference (None: grey only)."""
        f = frame.astype(np.float32)
        chroma = self.chroma if colour is not None else None
        if (self._long is None or self._short is None or self._age is None or self._arrived is None
                or self._ts is None or (chroma is not None and chroma.long_term is None)):
            return self._start(f, ts, frame, colour)
        p = self.params
        dt = min(max(ts - self._ts, 0.0), p.max_gap_s)
        self._ts = ts
        blocked = masked if ignored is None else masked | ignored
        free = ~blocked
        offset = _median_offset(f, self._long, free)
        diff_long = np.asarray(cv2.absdiff(f, self._long + offset), dtype=np.float32)
        grey_fg = diff_long > p.diff_threshold
        self._n += 1
        cd: ChromaDifference | None = None
        recoloured: Mask | None = None
        fg_long = grey_fg
        if chroma is not None:
            assert colour is not None
            cd = chroma.update(colour, f.shape[:2], free)
            np.maximum(diff_long, cd.long, out=diff_long)
            # max(grey, chroma) > threshold, without comparing the combined float plane again
            recoloured = _over(cd.long, p.diff_threshold)
            fg_long = grey_fg | recoloured
        n_free = np.count_nonzero(free)  # counts, not boolean indexing: a ragged mask makes that cost up to 1 ms
        if n_free and np.count_nonzero(fg_long & free) / n_free > p.relearn_fraction:
            return self._start(f, ts, frame, colour)
        # differs from the short-term background (grey or chroma): moving foreground
        moving = np.asarray(cv2.absdiff(f, self._short), dtype=np.float32) > p.diff_threshold
        if cd is not None:
            moving |= _over(cd.short, p.diff_threshold)
        corrected = f - np.float32(offset)
        unstable = self.flicker.update(frame, free, dt, recoloured)
        jumped = self._jumped(f, masked)
        if cd is not None:
            jumped |= _over(cd.step, p.diff_threshold)  # set down: its colour steps even where its grey level does not
        arrived = self._arrive(fg_long, moving, diff_long, jumped & masked)
        raw = fg_long & ~moving & free & arrived
        static = np.asarray(cv2.morphologyEx(raw.view(np.uint8), cv2.MORPH_OPEN, _KERNEL)).view(bool)  # 0/1 stay 0/1
        # Thin pieces by their grey level only: chroma at half resolution cannot resolve a piece one or two work
        # pixels wide, and where it seems to (a colour edge shifted by a fraction of its half-resolution pixel)
        # it is resampling, not a thing.
        thin = raw & ~static & grey_fg
        if self._n % 2 == 1 or self._thin is None:  # labelled every other frame: a piece stays put
            many = np.count_nonzero(thin) >= p.thin_length_px * 0.7  # fewer pixels span no piece that long
            self._thin = thin_pieces(thin, p.thin_length_px, p.edge_margin_px) if many else np.zeros_like(thin)
        static |= thin & self._thin
        assert self._confirmed is not None
        if ts - self._started >= p.min_static_s:  # whatever passed through the first frame has moved on by now
            self._confirmed |= free & ~fg_long
        learnt_left = self._learnt_left(fg_long, static, ts)
        if learnt_left.any():
            self.absorb(learnt_left)
            static &= ~learnt_left
        held, seen = self._hold(f, corrected, offset, fg_long, masked, jumped, dt)
        age = self._age
        established = age >= p.min_static_s
        _put(age, np.maximum(age + np.float32(dt), seen), static)
        _put(seen, self._nothing, static)  # credited once, when the short-term background has caught up
        _put(age, np.maximum(age - np.float32(2.0 * dt), np.float32(0.0)), ~static & free)
        # a standing person never starts to count; an occluded bag keeps its age
        _put(age, self._zeros, masked & ~established)
        if ignored is not None:
            _put(age, self._zeros, ignored)
        not_learnt = fg_long | masked
        self._learn(f, offset, not_learnt, dt)
        if chroma is not None:
            chroma.learn(not_learnt, dt, p.short_term_s, p.long_term_s)
        old = age > p.absorb_after_s
        if old.any():
            self.absorb(old)
        return BackgroundResult(age >= p.min_static_s, age.copy(), np.maximum(age, held), diff_long, unstable,
                                False)

    def _jumped(self, frame: F32, masked: Mask) -> Mask:
        """Pixels that stepped by more than the threshold since the previous frame, beyond the frames' global
        gain (a bag set down, a passer-by uncovering it; not auto exposure brightening a white road marking)."""
        assert self._prev is not None
        return np.asarray(cv2.absdiff(frame, self._prev * _frame_gain(frame, self._prev, ~masked)),
                          dtype=np.float32) > self.params.diff_threshold

    def _hold(self, frame: F32, corrected: F32, offset: float, foreground: Mask, masked: Mask, arrived: Mask,
              dt: float) -> tuple[F32, F32]:
        """Advance each pixel's hold of what arrived on it: (`held`, masked time included; `seen`, unmasked time
        only), negative where nothing is held.

        An arrival is a jump by more than the threshold from one frame to the next (`arrived`, `_jumped`): the
        pixel then holds the new value (brightness-corrected) until it moves that far from it. A slow drift out
        of the background (a gain change, dusk) is no arrival, and a background pixel holds nothing, so neither
        counts; they are left to the accumulated static age. Nor does a pixel whose long-term value was never
        confirmed (seen unmasked and agreeing, `min_static_s` or more after the backgrounds were (re)built): a
        first frame or a relearn takes in whatever stood there, the tracker may not mask it yet on the next
        frames, and a truck that was on the pixel and drove off is no "arrival" of the road.

        The held value is compared brightness-corrected by the frame's global offset, which is exact only for a
        pixel as bright as the frame's median: under an exposure or light change a darker or brighter thing moves
        by less or more than the offset (c003 of the composite family: a dark bag that arrived while the view was
        48 levels dark lost its hold as the view brightened again, and its region was dated 2 s after it came to
        rest). So a pixel has drifted only by more than the threshold plus how far the global offset moved since
        its anchor was set."""
        assert self._anchor is not None and self._prev is not None and self._held is not None
        assert self._seen is not None and self._anchor_offset is not None
        thr = self.params.diff_threshold
        now = self._offset_plane  # this frame's offset everywhere (one buffer, filled)
        now.fill(np.float32(offset))
        moved = cv2.absdiff(self._anchor_offset, now)  # how far the offset moved since each anchor
        drifted = np.asarray(cv2.subtract(cv2.absdiff(corrected, self._anchor), moved), dtype=np.float32) > thr
        _put(self._anchor, corrected, arrived)
        _put(self._anchor_offset, now, arrived)
        np.copyto(self._prev, frame)
        assert self._confirmed is not None
        lost = (drifted & ~arrived) | ~foreground | ~self._confirmed
        began = arrived & foreground & self._confirmed
        step = np.float32(dt)
        for hold in (self._held, self._seen):
            hold += step
            _put(hold, self._nothing, lost)
            _put(hold, self._zeros, began)
        _put(self._seen, np.minimum(self._seen, np.float32(0.0)), masked)
        return self._held, self._seen

    def _learnt_left(self, fg_long: Mask, static: Mask, ts: float) -> Mask:
        """Static pixels that left the (re)learnt frame's value before it was confirmed (within `min_static_s` of
        the (re)learn) and never came back: the learnt frame held something passing (a car driving through a
        relearn, not yet tracked), and what settled after it is the background. The ghost test cannot always tell:
        a revealed piece of lane line stands out from the road more than the car body it was learnt under did.
        The price: a thing set down within `min_static_s` of a (re)learn is learnt as background."""
        assert self._left_early is not None and self._confirmed is not None
        if ts - self._started < self.params.min_static_s:
            self._left_early |= fg_long & ~self._confirmed
        self._left_early &= ~self._confirmed
        return static & self._left_early

    def _arrive(self, fg_long: Mask, moving: Mask, diff_long: F32, jumped: Mask) -> Mask:
        """Pixels that stepped away from the long-term background (moving foreground: different from both
        backgrounds, masked or not; or, under a tracked person's or vehicle's box, a jump from the previous frame:
        `jumped`) since they last matched it clearly (within half the threshold).

        The jump matters where a mover stands: an owner's legs darken the short-term background where they stand,
        and the dark bag they leave there differs from the long-term background but not from that short-term
        one, so it never looks "moving"; it does step away from the frame before, which showed the ground
        between the legs. Only there: elsewhere the short-term background holds no mover, and a step that it
        does not see (a frame's edge filled anew by the stabiliser) is not an arrival. A slow drift never steps."""
        assert self._arrived is not None
        thr = self.params.diff_threshold
        self._arrived |= fg_long & (moving | jumped)
        self._arrived &= diff_long > 0.5 * thr
        return self._arrived

    def _start(self, f: F32, ts: float, frame: npt.NDArray[np.uint8],
               colour: npt.NDArray[np.uint8] | None = None) -> BackgroundResult:
        h, w = f.shape[:2]
        if self.chroma is not None:
            self.chroma.reset()
            if colour is not None:
                self.chroma.start(colour)
        self._long, self._short = f.copy(), f.copy()
        self._age = np.zeros((h, w), np.float32)
        self._anchor, self._prev = f.copy(), f.copy()
        self._anchor_offset = np.zeros((h, w), np.float32)
        self._offset_plane = np.zeros((h, w), np.float32)
        self._nothing, self._zeros = np.full((h, w), _NOTHING, np.float32), np.zeros((h, w), np.float32)
        self._held, self._seen = self._nothing.copy(), self._nothing.copy()
        self._confirmed = np.zeros((h, w), bool)
        self._left_early = np.zeros((h, w), bool)
        self._arrived = np.zeros((h, w), bool)
        self._started = ts
        self._ts = ts
        self._n, self._thin = 0, None
        self.flicker.reset()
        self.flicker.update(frame, np.ones((h, w), bool), 0.0)
        zeros = np.zeros((h, w), np.float32)
        none = np.zeros((h, w), bool)
        return BackgroundResult(none, self._age.copy(), zeros, zeros.copy(), none.copy(), True)

    def _learn(self, f: F32, offset: float, foreground: Mask, dt: float) -> None:
        assert self._long is not None and self._short is not None
        a_short = 1.0 - math.exp(-dt / self.params.short_term_s)
        a_long = 1.0 - math.exp(-dt / self.params.long_term_s)
        cv2.accumulateWeighted(f, self._short, a_short)
        cv2.accumulateWeighted(f, self._long, a_long, mask=(~foreground).view(np.uint8))
        # Follow a global brightness drift in the whole long-term background, objects included, so a slow change
        # (dusk) never piles up into an offset the relearn has to catch.
        self._long += np.float32(min(1.0, a_long * 10.0) * offset)


def _over(levels: npt.NDArray[np.uint8], threshold: float) -> Mask:
    """`levels > threshold` for whole uint8 levels, compared in uint8 (as float32 `levels > threshold` is): a
    whole level is above a threshold exactly when it is above the threshold's floor."""
    k = math.floor(np.float32(threshold))
    if k < 0:
        return np.ones(levels.shape, bool)
    if k >= 255:
        return np.zeros(levels.shape, bool)
    return np.asarray(levels > np.uint8(k), dtype=bool)


def _put(dst: F32, src: F32, where: Mask) -> None:
    """dst[where] = src[where], in place. OpenCV's masked copy: numpy's boolean indexing (and `where=`) costs
    up to a millisecond on a 320x180 frame when the mask is ragged, as masks of noise and edges are."""
    cv2.copyTo(src, np.ascontiguousarray(where).view(np.uint8), dst)


def thin_pieces(thin: Mask, min_length_px: float, edge_margin_px: int) -> Mask:
    """The connected pieces of `thin` (static pixels the 3x3 opening removed) at least `min_length_px` long (their
    box's diagonal) that stay `edge_margin_px` or more inside the frame: a fallen cable one or two work pixels
    wide, which the opening that clears compression and rain speckle would erase. A line along the frame's edge
    is left out: resampling a shifted view refills the edge rows, and an object cut by the edge cannot be
    measured as a wire anyway."""
    h, w = thin.shape
    # 16-bit labels where they cannot overflow (8-connected pieces of one pixel are at most every other pixel in
    # each direction): half the bytes to write for the same labels
    ltype = cv2.CV_16U if ((h + 1) // 2) * ((w + 1) // 2) < 65535 else cv2.CV_32S
    n, labels, stats, _ = cv2.connectedComponentsWithStats(np.ascontiguousarray(thin).view(np.uint8), connectivity=8,
                                                           ltype=ltype)
    out = np.zeros_like(thin)
    if n <= 1:
        return out
    x, y, bw, bh = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
    m = edge_margin_px
    keep = (np.hypot(bw, bh) >= min_length_px) & (x >= m) & (y >= m) & (x + bw <= w - m) & (y + bh <= h - m)
    keep[0] = False
    for i in np.flatnonzero(keep):  # few pieces are kept: each within its own box, not a lookup of every pixel
        xa, ya, xb, yb = int(x[i]), int(y[i]), int(x[i] + bw[i]), int(y[i] + bh[i])
        out[ya:yb, xa:xb] |= labels[ya:yb, xa:xb] == i
    return out


def _frame_gain(f: F32, prev: F32, free: Mask) -> np.float32:
    """Median ratio of this frame to the previous one over unmasked pixels: a global exposure or light step."""
    at = _grid(f.shape[0], f.shape[1], 4)  # the every-fourth-pixel grid, gathered (not strided, then masked)
    p = np.take(prev, at)
    sub = np.take(free, at) & (p >= 16.0)
    if not sub.any():
        return np.float32(1.0)
    return np.float32(_median(np.take(f, at)[sub] / p[sub]))


def _median_offset(f: F32, background: F32, free: Mask) -> float:
    """Median of frame minus background over unmasked pixels: the global brightness change."""
    if not free.any():
        return 0.0
    sub = free[::2, ::2]
    n = np.count_nonzero(sub)
    step = max(1, n // 4000)  # a sample is enough for a median
    grid = _grid(f.shape[0], f.shape[1], 2)
    # all free: every `step`-th pixel of the grid; else every `step`-th free one (raster order, as `d[sub]`)
    at = grid[::step] if n == sub.size else grid[np.flatnonzero(sub)[::step]]
    # only the sampled pixels are subtracted (a gather), not the whole grid
    return float(_median(np.take(f, at) - np.take(background, at)))


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int, every: int) -> npt.NDArray[np.intp]:
    """Flat indices, in raster order, of `image[::every, ::every]` for an h x w image (read only)."""
    rows, cols = np.arange(0, h, every), np.arange(0, w, every)
    return np.asarray((rows[:, None] * w + cols[None, :]).ravel(), dtype=np.intp)


def _median(values: F32) -> float:
    """`np.median` of a 1-D array (non-empty, no NaN) by one partition, without its overhead (twice per frame)."""
    n = values.size
    k = n // 2
    if n % 2:
        return float(np.partition(values, k)[k])
    part = np.partition(values, (k - 1, k))
    return 0.5 * (float(part[k - 1]) + float(part[k]))
