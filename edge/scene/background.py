"""Dual background: what changed in the view and then stayed.

Two running-average backgrounds at work resolution (measured: about 1 ms per frame at 320x180, cheaper and
easier to control than two MOG2 models, whose learning rate counts frames rather than seconds):

- the **short-term** background follows the frame within `short_term_s` seconds, everywhere;
- the **long-term** background follows slowly (`long_term_s`) and only where the frame agrees with it, so a thing
  that arrives and stays is never learnt into it.

A pixel that differs from the long-term background but agrees with the short-term one is *static foreground*,
provided it **arrived**: since it last matched the long-term background it differed from both backgrounds at once
(moving foreground: something was carried in, set down, or drove up). This is the moving -> static sequence of
dual-background abandoned-object detectors (Heras Evangelio and Sikora's state machine). A pixel whose look
creeps away from the long-term background without ever stepping (a cloud's shadow crossing foliage, white
balance drifting over a coloured wall) never moved, so it never counts. Each pixel counts how long it has been
static (seconds of capture time); a pixel that has been static for `min_static_s` belongs to a region
(`gridwatch.edge.scene.regions`).

Failure modes handled here:

- masked boxes (tracked persons and vehicles) never start to count: their pixels are reset unless they already
  belonged to an established region (a passer-by occluding a left bag does not erase it);
- a global brightness change is removed first (per-channel median offset between frame and background), and a
  change over more than `relearn_fraction` of the frame at once (street lights, auto exposure) relearns both
  backgrounds instead of reporting regions;
- shadows are told apart per region (`regions.is_shadow`), where texture can be compared;
- noise (rain, compression): a grey-level threshold, a 3x3 opening of the static mask, and a minimum region area;
- pixels that keep changing (burnt-in clocks, swaying trees, blinking lights) are marked *unstable*
  (`gridwatch.edge.scene.unstable`); the stage drops a region that is mostly unstable. They are not cut out of
  static foreground pixel by pixel: that splits a ghost (a revealed kerb under passing traffic) into fragments
  the ghost test cannot judge (seen on the highway clip);
- `ignored` pixels (the camera's configured ignore masks) are never foreground, never counted, and take no part
  in the global brightness estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from gridwatch.edge.scene.unstable import FlickerMask, FlickerParams

F32 = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]

_KERNEL = np.ones((3, 3), np.uint8)


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


@dataclass(frozen=True)
class BackgroundResult:
    """`established`: pixels static for at least `min_static_s`; `age_s`: seconds each pixel has been static;
    `difference`: grey-level difference to the long-term background (offset-corrected); `unstable`: pixels that
    keep changing (`gridwatch.edge.scene.unstable`); `relearnt`: the backgrounds were rebuilt on this frame (global
    change), so nothing is reported."""

    established: Mask
    age_s: F32
    difference: F32
    unstable: Mask
    relearnt: bool


class DualBackground:
    """Long- and short-term backgrounds of grey uint8 work-resolution frames (already stabilised).

    Grey, not colour: a third of the cost, and a dropped bag, a pile or a wire differs from the ground in
    brightness far more often than in hue alone."""

    def __init__(self, params: BackgroundParams | None = None) -> None:
        self.params = params or BackgroundParams()
        self._long: F32 | None = None
        self._short: F32 | None = None
        self._age: F32 | None = None
        self._arrived: Mask | None = None
        self._ts: float | None = None
        p = self.params
        self.flicker = FlickerMask(FlickerParams(p.flicker_window_s, p.flicker_changes, p.diff_threshold))

    @property
    def long_term(self) -> F32 | None:
        return self._long

    def reset(self) -> None:
        """Forget everything: the next frame starts both backgrounds (after a camera shift settled)."""
        self._long = self._short = self._age = self._arrived = None
        self._ts = None
        self.flicker.reset()

    def absorb(self, region: Mask) -> None:
        """Learn `region` into the long-term background now (a ghost, or a region old enough to be scenery)."""
        if self._long is None or self._short is None or self._age is None:
            return
        self._long[region] = self._short[region]
        self._age[region] = 0.0

    def update(self, frame: npt.NDArray[np.uint8], masked: Mask, ts: float,
               ignored: Mask | None = None) -> BackgroundResult:
        """One frame: `masked` pixels (tracked persons and vehicles) never start to count; `ignored` pixels (the
        camera's ignore masks) never count at all."""
        f = frame.astype(np.float32)
        if (self._long is None or self._short is None or self._age is None or self._arrived is None
                or self._ts is None):
            return self._start(f, ts, frame)
        p = self.params
        dt = min(max(ts - self._ts, 0.0), p.max_gap_s)
        self._ts = ts
        blocked = masked if ignored is None else masked | ignored
        free = ~blocked
        offset = _median_offset(f, self._long, free)
        diff_long = np.asarray(cv2.absdiff(f, self._long + offset), dtype=np.float32)
        fg_long = diff_long > p.diff_threshold
        if free.any() and float(fg_long[free].mean()) > p.relearn_fraction:
            return self._start(f, ts, frame)
        diff_short = np.asarray(cv2.absdiff(f, self._short), dtype=np.float32)
        unstable = self.flicker.update(frame, free, dt)
        arrived = self._arrive(fg_long, diff_short, diff_long)
        static = fg_long & (diff_short <= p.diff_threshold) & free & arrived
        static = cv2.morphologyEx(static.astype(np.uint8), cv2.MORPH_OPEN, _KERNEL).astype(bool)
        age = self._age
        established = age >= p.min_static_s
        age[static] += dt
        idle = ~static & free
        age[idle] = np.maximum(age[idle] - 2.0 * dt, 0.0)
        age[masked & ~established] = 0.0  # a standing person never starts to count; an occluded bag keeps its age
        if ignored is not None:
            age[ignored] = 0.0
        self._learn(f, offset, fg_long | masked, dt)
        old = age > p.absorb_after_s
        if old.any():
            self.absorb(old)
        return BackgroundResult(age >= p.min_static_s, age.copy(), diff_long, unstable, False)

    def _arrive(self, fg_long: Mask, diff_short: F32, diff_long: F32) -> Mask:
        """Pixels that stepped away from the long-term background (moving foreground: different from both
        backgrounds, masked or not) since they last matched it clearly (within half the threshold)."""
        assert self._arrived is not None
        thr = self.params.diff_threshold
        self._arrived |= fg_long & (diff_short > thr)
        self._arrived &= diff_long > 0.5 * thr
        return self._arrived

    def _start(self, f: F32, ts: float, frame: npt.NDArray[np.uint8]) -> BackgroundResult:
        h, w = f.shape[:2]
        self._long, self._short = f.copy(), f.copy()
        self._age = np.zeros((h, w), np.float32)
        self._arrived = np.zeros((h, w), bool)
        self._ts = ts
        self.flicker.reset()
        self.flicker.update(frame, np.ones((h, w), bool), 0.0)
        none = np.zeros((h, w), bool)
        return BackgroundResult(none, self._age.copy(), np.zeros((h, w), np.float32), none.copy(), True)

    def _learn(self, f: F32, offset: float, foreground: Mask, dt: float) -> None:
        assert self._long is not None and self._short is not None
        a_short = 1.0 - math.exp(-dt / self.params.short_term_s)
        a_long = 1.0 - math.exp(-dt / self.params.long_term_s)
        cv2.accumulateWeighted(f, self._short, a_short)
        cv2.accumulateWeighted(f, self._long, a_long, mask=(~foreground).astype(np.uint8))
        # Follow a global brightness drift in the whole long-term background, objects included, so a slow change
        # (dusk) never piles up into an offset the relearn has to catch.
        self._long += np.float32(min(1.0, a_long * 10.0) * offset)


def _median_offset(f: F32, background: F32, free: Mask) -> float:
    """Median of frame minus background over unmasked pixels: the global brightness change."""
    if not free.any():
        return 0.0
    sub = free[::2, ::2]
    step = max(1, int(sub.sum()) // 4000)  # a sample is enough for a median
    d = (f[::2, ::2] - background[::2, ::2])[sub][::step]
    return float(np.median(d))
