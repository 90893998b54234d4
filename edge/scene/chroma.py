"""Chroma: the colour half of "different", for things that match the ground in grey level.

A green bag on grey paving, a brown box on brown-grey asphalt: 9-35 grey levels off the ground, below the grey
threshold (raising the sensitivity of grey would let in compression noise and light flicker everywhere), but a
clearly different colour. `ChromaBackground` keeps long- and short-term backgrounds of two brightness-free chroma
planes, (R - G) / Y and (B - G) / Y, and reports per pixel how far the frame is from each (and from the previous
frame) in *grey-equivalent* units: a chroma difference of `threshold` reads as `diff_threshold` grey levels. The
dual background takes the larger of the grey and the chroma difference everywhere, so a pixel is foreground when
its grey level *or* its colour changed, and every rule of the grey path (arrival, static, hold, relearn) applies
unchanged.

**Half resolution.** The planes are kept at half the work resolution (160x90 at the default 320 px): street video
is coded with its chroma at half resolution (4:2:0) anyway, and averaging 2x2 work pixels quarters the noise
the ratio amplifies. The cost is a resize of the colour frame, a few float operations on a quarter of the work
pixels and one nearest-neighbour upsampling per frame (`benchmarks/scene_change.py` measures the stage).

**Only where chroma means something.** The ratios divide by the brightness: below `grey_range[0]` a few grey
levels of sensor noise swing them by more than the threshold, and above `grey_range[1]` a clipped channel bends
them. Pixels outside the range, in the frame or in the long-term background, have no chroma difference (their
grey difference still counts). A global colour cast (white balance, the blue of dusk) is removed first, as the
grey path removes a global brightness offset: the median chroma offset over the unmasked valid pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


Planes = tuple[F32, F32, F32, F32, F32]
"""A background's planes: grey level, the two chroma planes, smallest and largest channel (float32, learnt)."""
FramePlanes = tuple[U8, F32, F32, U8, U8]
"""A frame's planes: the same, with the grey level and the channels as the frame's whole uint8 levels."""
CHANNEL_RANGE = (16.0, 250.0)
"""Every colour channel must lie in this range (frame and long-term background) for chroma to be measured: a
channel near 0 is sensor noise and compression (a saturated orange's green: its ratios swing with every change
of light), one near 255 is clipped."""


def chroma_planes(bgr: U8) -> FramePlanes:
    """Grey level Y (OpenCV's BGR -> grey, rounded), the chroma planes (R - G) / Y and (B - G) / Y (float32), and
    the smallest and largest channel; Y and the channels stay uint8 (compared as whole levels, learnt into the
    float32 backgrounds by `cv2.accumulateWeighted`, which reads uint8 as the same values)."""
    b, g, r = cv2.split(bgr)[:3]  # BGR or BGRA (the stage warps 4 channels: OpenCV's fast path)
    y = cv2.cvtColor(bgr, cv2.COLOR_BGRA2GRAY if bgr.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    inv = 1.0 / np.maximum(y, 1).astype(np.float32)
    c1 = cv2.multiply(cv2.subtract(r, g, dtype=cv2.CV_32F), inv)
    c2 = cv2.multiply(cv2.subtract(b, g, dtype=cv2.CV_32F), inv)
    return (np.asarray(y, np.uint8), np.asarray(c1, np.float32), np.asarray(c2, np.float32),
            np.asarray(cv2.min(cv2.min(b, g), r), np.uint8), np.asarray(cv2.max(cv2.max(b, g), r), np.uint8))


@dataclass(frozen=True)
class ChromaDifference:
    """Per work pixel, in grey-equivalent units (whole levels, saturating at 255; 0 where chroma is not
    measured; uint8 like a grey difference): `long` against the long-term background (colour cast removed),
    `short` against the short-term one, `step` against the previous frame."""

    long: U8
    short: U8
    step: U8


class ChromaBackground:
    """Long- and short-term backgrounds of the chroma planes at half work resolution (see the module docstring).

    `update` measures a frame against them (without learning); `learn` then follows the frame, the long-term
    background only where the caller's foreground mask is clear, as the grey backgrounds do. Each image is kept
    as separate 2-D planes: OpenCV's per-plane operations, no merging and splitting of channels."""

    def __init__(self, threshold: float, grey_equivalent: float, grey_range: tuple[float, float]) -> None:
        self.threshold = threshold
        self.scale = np.float32(grey_equivalent / threshold)
        self.grey_range = grey_range
        self._long: Planes | None = None
        self._short: Planes | None = None
        self._prev: FramePlanes | None = None
        self._now: FramePlanes | None = None
        self._summary: tuple[F32, F32, F32, F32, Mask] | None = None  # the long-term's ranges and validity
        self._learnt = 0

    def reset(self) -> None:
        self._long = self._short = self._prev = self._now = None
        self._summary = None

    @property
    def long_term(self) -> Planes | None:
        return self._long

    @property
    def current(self) -> FramePlanes | None:
        return self._now

    def start(self, bgr: U8) -> None:
        planes = chroma_planes(bgr)
        self._now = planes
        self._long, self._short, self._prev = _copy(planes), _copy(planes), planes
        self._summary = None

    def update(self, bgr: U8, shape: tuple[int, int], free: Mask) -> ChromaDifference:
        """Differences of this (half-resolution, stabilised) BGR or BGRA frame, upsampled to `shape` (work h, w). `free`
        (work resolution): the unmasked pixels the colour cast is measured on."""
        assert self._long is not None and self._short is not None and self._prev is not None
        now = chroma_planes(bgr)
        self._now = now
        lo, hi = self.grey_range
        y, c1, c2, mn, mx = now
        _, l1, l2, _, _ = self._long
        lo1, hi1, lo2, hi2, long_valid = self._long_summary()
        cl, ch = CHANNEL_RANGE
        valid = _at_least(y, lo) & _at_most(y, hi) & _at_least(mn, cl) & _at_most(mx, ch) & long_valid
        h2, w2 = y.shape
        sample = valid[::4, ::4] & (cv2.resize(np.ascontiguousarray(free).view(np.uint8), (w2, h2),
                                               interpolation=cv2.INTER_NEAREST)[::4, ::4] > 0)
        n = int(np.count_nonzero(sample))
        cast = [np.float32(0.0), np.float32(0.0)]
        if n >= 16:  # the colour cast: median offset over a sixteenth of the valid pixels
            cast = [np.float32(np.partition((c[::4, ::4] - lc[::4, ::4])[sample], n // 2)[n // 2])
                    for c, lc in ((c1, l1), (c2, l2))]
        measured = np.ascontiguousarray(valid).view(np.uint8) * np.uint8(255)  # AND-mask: 0 where not measured
        h, w = shape
        # Against the range of the long-term's 3x3 neighbourhood: a colour edge that residual misregistration
        # moves by up to one half-resolution pixel is no change (seen on shaking synthetic cameras: a lane
        # line's colour edge became a thin chroma-only region); a thing's inside differs from every neighbour.
        d_long = np.maximum(_outside(c1 - cast[0], lo1, hi1), _outside(c2 - cast[1], lo2, hi2))
        d_short = cv2.max(cv2.absdiff(c1, self._short[1]), cv2.absdiff(c2, self._short[2]))
        d_step = cv2.max(cv2.absdiff(c1, self._prev[1]), cv2.absdiff(c2, self._prev[2]))
        # Upsampled as uint8 grey-equivalent levels (a grey difference is 0-255 too): a quarter of the bytes.
        # Scaled and rounded in one call, then cleared where chroma is not measured (the same levels as scaling
        # by a 0/scale gain plane: d * 0 rounds to 0)
        long_u8, short_u8, step_u8 = (
            np.asarray(cv2.resize(cv2.bitwise_and(cv2.convertScaleAbs(d, alpha=float(self.scale)), measured),
                                  (w, h), interpolation=cv2.INTER_NEAREST), dtype=np.uint8)
            for d in (d_long, d_short, d_step))
        return ChromaDifference(long_u8, short_u8, step_u8)

    def _long_summary(self) -> tuple[F32, F32, F32, F32, Mask]:
        """The long-term chroma planes' 3x3 neighbourhood ranges and where the long-term is valid for chroma,
        recomputed after a start or an absorb and every `SUMMARY_EVERY` learns: the long-term background moves by
        less than 1 % in that time where it learns at all, so this is the same and saves four morphological
        operations and four comparisons per frame."""
        if self._summary is None:
            assert self._long is not None
            ly, l1, l2, lmn, lmx = self._long
            lo, hi = self.grey_range
            cl, ch = CHANNEL_RANGE
            self._summary = (np.asarray(cv2.erode(l1, _NEIGHBOURS), np.float32),
                             np.asarray(cv2.dilate(l1, _NEIGHBOURS), np.float32),
                             np.asarray(cv2.erode(l2, _NEIGHBOURS), np.float32),
                             np.asarray(cv2.dilate(l2, _NEIGHBOURS), np.float32),
                             (ly >= lo) & (ly <= hi) & (lmn >= cl) & (lmx <= ch))
        return self._summary

    def learn(self, foreground: Mask, dt: float, short_term_s: float, long_term_s: float) -> None:
        """Follow the frame last given to `update`: the short-term background everywhere, the long-term one where
        no pixel of `foreground` (work resolution) lies in the half-resolution pixel."""
        assert self._long is not None and self._short is not None and self._now is not None
        h2, w2 = self._now[0].shape
        keep = (~_any_half(foreground, (w2, h2))).view(np.uint8)
        a_short = 1.0 - math.exp(-dt / short_term_s)
        a_long = 1.0 - math.exp(-dt / long_term_s)
        for k in (1, 2):  # the short-term's grey and channel planes are never read
            cv2.accumulateWeighted(self._now[k], self._short[k], a_short)
        for k in range(len(self._long)):  # the frame's grey and channel planes are uint8: read as their values
            now: U8 | F32 = self._now[k]
            cv2.accumulateWeighted(now, self._long[k], a_long, mask=keep)
        self._prev = self._now
        self._learnt += 1
        if self._learnt % SUMMARY_EVERY == 0:
            self._summary = None

    def absorb(self, region: Mask) -> None:
        """Learn `region` (work resolution) into the long-term background now (the chroma from the short-term
        background, the grey and channel planes, which only gate where chroma is measured, from the frame)."""
        if self._long is None or self._short is None:
            return
        h2, w2 = self._long[0].shape
        half = _any_half(region, (w2, h2))
        assert self._now is not None
        for k in range(len(self._long)):
            now: U8 | F32 = self._now[k]
            self._long[k][half] = self._short[k][half] if k in (1, 2) else now[half]
        self._summary = None


_NEIGHBOURS = np.ones((3, 3), np.uint8)


SUMMARY_EVERY = 10


def _outside(c: F32, low: F32, high: F32) -> F32:
    """How far `c` lies outside [low, high] (a background's 3x3 neighbourhood range; 0 inside it)."""
    return np.maximum(np.maximum(c - high, low - c), np.float32(0.0))


def _copy(planes: FramePlanes) -> Planes:
    """A frame's planes as a background's (float32 copies)."""
    y, c1, c2, mn, mx = planes
    return y.astype(np.float32), c1.copy(), c2.copy(), mn.astype(np.float32), mx.astype(np.float32)


def _at_least(levels: U8, value: float) -> Mask:
    """`levels >= value` for whole uint8 levels, compared in uint8."""
    k = math.ceil(value)
    if k <= 0:
        return np.ones(levels.shape, bool)
    return np.zeros(levels.shape, bool) if k > 255 else np.asarray(levels >= np.uint8(k), dtype=bool)


def _at_most(levels: U8, value: float) -> Mask:
    """`levels <= value` for whole uint8 levels, compared in uint8."""
    k = math.floor(value)
    if k >= 255:
        return np.ones(levels.shape, bool)
    return np.zeros(levels.shape, bool) if k < 0 else np.asarray(levels <= np.uint8(k), dtype=bool)


def _any_half(mask: Mask, size: tuple[int, int]) -> Mask:
    """`mask` (work resolution) shrunk to `size` (w, h): true where any work pixel it covers is (INTER_AREA of
    0/255 is above 0 there)."""
    u8 = np.ascontiguousarray(mask).view(np.uint8) * np.uint8(255)
    return np.asarray(cv2.resize(u8, size, interpolation=cv2.INTER_AREA), dtype=np.uint8) > 0
