"""Unstable pixels: places in the view that keep changing, so nothing static can be seen there.

Real street cameras carry burnt-in clocks and on-screen text, trees and flags that sway, blinking lights and
signs. Their pixels change again and again while the rest of the scene is still, and between two changes they
can look exactly like static foreground (a clock digit that shows the same value for a second agrees with the
short-term background). A left object is the opposite: it arrives once and then stays unchanged.

`FlickerMask` counts, per pixel, the abrupt changes between consecutive analysed frames with an exponential memory
of `window_s` seconds of capture time. A change is a grey level more than the background's difference threshold
outside the range of the previous frame's 3x3 neighbourhood: a one-pixel misregistration of a shaken, stabilised
frame moves edges by a pixel and is no change, a digit, a leaf or a lamp that changes is.
A pixel whose decayed count reaches `min_changes` (2.5: about three changes within half the memory, more than
the in-and-out of one passing thing) is *unstable*. The stage drops a region made mostly of unstable pixels
(`unstable_share`) while they keep changing. A pixel is stable again once its count falls below half of
`min_changes` (hysteresis: a clock segment that rests a few seconds between changes stays unstable); the count is
capped at twice `min_changes`, so that happens at most `window_s * ln 4` seconds after its last change, however
long it flickered. The segment of a clock's seconds digit that is dark only for the digits 1 and 4 changes 4
times every 10 s whatever the analysis rate (its count stays above 2.5 from its third change on); a passing car
or person adds at most two (entering and leaving: at 2 fps an untracked car makes four on its way, which the end
of its run takes back to two), and tracked persons and vehicles are masked out and add none.
An untracked car that rolls over the spot as a bag appears makes a change on every frame it covers (body, windows,
roof, shadow); such a run that leaves a new look behind counts as one change (`FlickerMask`), so the bag is not
dropped as unstable for the next 20 s.

Cost: a 3x3 erosion and dilation, two comparisons and one multiply-add per work-resolution pixel per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

_GROW = np.ones((3, 3), np.uint8)
MIN_RUN = 2.5
"""A run that settles on a new look is forgiven from about three changes on (the decayed count it added)."""
PASS_CHANGES = 2.0
PASS_MAX_S = 4.0
"""A brief run (first to last change within `PASS_MAX_S`) that ends back on a look the pixel held is something
passing through: it counts as at most `PASS_CHANGES` changes, entering and leaving. At 2 fps an untracked car
rolling over a pixel makes four (darker, roof, windows, back); counted in full, the ground it crossed was unstable
for 20 s and a cable that fell there right after was dropped (the lot-aisle composites, where YOLOX-Nano calls
cars seen from above 'cell phone'). A clock segment, a lamp or leaves that keep changing make longer runs, which
count in full; one that rests between short runs adds two per run and is unstable from its second run on."""


@dataclass(frozen=True)
class FlickerParams:
    """See `gridwatch.edge.config.SceneChangeConfig` (`flicker_window_s`, `flicker_changes`)."""

    window_s: float = 15.0
    min_changes: float = 2.5
    step: float = 20.0
    """Grey-level step between consecutive frames that counts as one change."""
    settle_s: float = 1.5
    """A run that ended on a new look counts as one change once the look has stayed this long."""


class FlickerMask:
    """Per-pixel decaying count of abrupt changes between consecutive (stabilised, grey) frames.

    **Runs.** Changes whose looks in between last less than `settle_s` are one run (a car's body, windows and
    shadow rolling over a pixel; a digit that shows for a moment); the run ends once its last look has stayed
    `settle_s`. A run that ends on a look the pixel held before it (the look it left, or the one before that run)
    was an excursion: a digit, a leaf, a lamp that goes and comes back, something passing through. Each of its
    changes counts, except that a brief one (`PASS_MAX_S`) counts as at most `PASS_CHANGES`: something passing
    through enters and leaves. A run of about three changes or more that ends on a look the pixel never held
    settled something new there: an untracked car rolls over the spot as a bag appears and leaves the bag behind. It
    counts as one change, however many the car made on the way; the pixel is then as unstable as that count
    says (its hysteresis as before the run). Until the new look has stayed, every change counts: an edge that a
    jittering registration keeps moving, or rain, never settles. A single change is a run of one: a clock
    segment's changes count as before."""

    def __init__(self, params: FlickerParams | None = None) -> None:
        self.params = params or FlickerParams()
        self._low: U8 | None = None
        self._high: U8 | None = None
        self._count: F32 | None = None
        self._unstable: Mask | None = None
        self._homes: list[U8] = []  # low/high bounds of the look before this run, then before the run before
        self._run: Mask | None = None  # inside a run: changed within the last `settle_s`
        self._run_added: F32 | None = None  # decayed count this run added
        self._was_unstable: Mask | None = None  # unstable when this run began
        self._quiet: F32 | None = None  # seconds since the last change
        self._run_s: F32 | None = None  # seconds since this run began
        self._zeros: F32 = np.zeros((0, 0), np.float32)
        self._step: U8 = np.zeros((0, 0), np.uint8)  # the change step, per pixel (read only)

    def reset(self) -> None:
        """Forget the history (the backgrounds were relearnt, or the reference view changed)."""
        self._low = self._high = self._count = self._unstable = None
        self._run = self._run_added = self._was_unstable = self._quiet = self._run_s = None
        self._homes = []

    @property
    def count(self) -> F32 | None:
        """The current decaying change count per pixel (None before the first frame)."""
        return self._count

    def update(self, frame: U8, counted: Mask, dt: float, recoloured: Mask | None = None) -> Mask:
        """Add this frame's changes on `counted` pixels (the unmasked ones) of a grey uint8 frame and return the
        unstable mask. `recoloured`: pixels whose colour now differs from the long-term background's (the
        chroma path): a look they never held even where its grey level is one they did."""
        if (self._low is None or self._high is None or self._count is None or self._unstable is None
                or self._run is None or self._run_added is None or self._was_unstable is None
                or self._quiet is None or self._run_s is None or self._low.shape != frame.shape):
            self._start(frame)
            assert self._unstable is not None
            return self._unstable.copy()
        p = self.params
        changed = ((frame > self._high) | (frame < self._low)) & counted
        decay = np.float32(math.exp(-max(dt, 0.0) / p.window_s))
        self._count *= decay
        self._run_added *= decay
        self._quiet += np.float32(max(dt, 0.0))
        self._run_s += np.float32(max(dt, 0.0))
        began = changed & ~self._run
        if began.any():
            self._begin_run(began)
        self._count += changed
        self._run_added += changed
        np.minimum(self._count, np.float32(2.0 * p.min_changes), out=self._count)
        _put(self._quiet, self._zeros, changed)
        self._run |= changed
        self._remember(frame)
        self._unstable = (self._count >= p.min_changes) | (self._unstable & (self._count >= 0.5 * p.min_changes))
        ended = self._run & (self._quiet >= np.float32(p.settle_s))
        if ended.any():
            self._end_run(frame, ended & counted, recoloured)
            self._run &= ~ended
        return self._unstable.copy()

    def _start(self, frame: U8) -> None:
        self._remember(frame)
        assert self._low is not None and self._high is not None
        self._count = np.zeros(frame.shape, np.float32)
        self._run_added = np.zeros(frame.shape, np.float32)
        self._unstable = np.zeros(frame.shape, bool)
        self._run = np.zeros(frame.shape, bool)
        self._was_unstable = np.zeros(frame.shape, bool)
        self._quiet = np.zeros(frame.shape, np.float32)
        self._run_s = np.zeros(frame.shape, np.float32)
        self._zeros = np.zeros(frame.shape, np.float32)  # read only: the source of `_put`'s resets
        self._homes = [self._low.copy(), self._high.copy(), self._low.copy(), self._high.copy()]

    def _begin_run(self, began: Mask) -> None:
        """A run starts where `began`: the look it leaves (held `settle_s` or more) becomes the newest home."""
        assert self._low is not None and self._high is not None and self._run_added is not None
        assert self._unstable is not None and self._was_unstable is not None
        lo1, hi1, lo2, hi2 = self._homes
        _put(lo2, lo1, began)
        _put(hi2, hi1, began)
        _put(lo1, self._low, began)
        _put(hi1, self._high, began)
        _put(self._run_added, self._zeros, began)
        assert self._run_s is not None
        _put(self._run_s, self._zeros, began)
        _put(self._was_unstable, self._unstable, began)

    def _end_run(self, frame: U8, ended: Mask, recoloured: Mask | None = None) -> None:
        """Runs whose last look has now stayed `settle_s` end. One that settled on a look the pixel never held
        before it (neither home) and made about three changes or more (`MIN_RUN`: fewer forgive too little to
        matter) counts as one change, hysteresis as before the run. A `recoloured` pixel is never back: its grey
        level may match a home's, its colour does not (composite footage: a car rolled over the spot as a green
        box 20 grey levels off the asphalt appeared, and the box was dropped as unstable)."""
        assert self._count is not None and self._run_added is not None and self._unstable is not None
        assert self._was_unstable is not None
        long_run = ended & (self._run_added >= np.float32(MIN_RUN))
        if not long_run.any():  # most frames: no run of that many changes ends, whatever it ended on
            return
        lo1, hi1, lo2, hi2 = self._homes
        back = ((frame >= lo1) & (frame <= hi1)) | ((frame >= lo2) & (frame <= hi2))
        if recoloured is not None:  # a green box as bright as the ground it covers is a new look all the same
            back &= ~recoloured
        self._forgive(long_run & ~back, 1.0)
        assert self._run_s is not None and self._quiet is not None
        brief = (self._run_s - self._quiet) <= np.float32(PASS_MAX_S)  # first to last change of the run
        self._forgive(long_run & back & brief, PASS_CHANGES)

    def _forgive(self, where: Mask, kept: float) -> None:
        """The runs ending `where` count as `kept` changes, hysteresis as before the run."""
        if not where.any():
            return
        assert self._count is not None and self._run_added is not None and self._unstable is not None
        assert self._was_unstable is not None
        p = self.params
        count = np.maximum(self._count[where] - np.maximum(self._run_added[where] - kept, 0.0), 0.0)
        self._count[where] = count
        self._unstable[where] = (count >= p.min_changes) | (self._was_unstable[where] & (count >= 0.5 * p.min_changes))

    def _remember(self, frame: U8) -> None:
        """The bounds the next frame must leave to count a change: the 3x3 neighbourhood's range widened by
        `step`, in uint8 (a bound past 0 or 255 is clipped there, where no grey level can pass it)."""
        step = self._step
        if step.shape != frame.shape:  # one constant plane per frame size
            step = self._step = np.full(frame.shape, min(255, round(self.params.step)), np.uint8)
        # OpenCV's saturating uint8 arithmetic: one pass each instead of a clip and an add
        self._high = np.asarray(cv2.add(cv2.dilate(frame, _GROW), step), dtype=np.uint8)
        self._low = np.asarray(cv2.subtract(cv2.erode(frame, _GROW), step), dtype=np.uint8)


def _put(dst: npt.NDArray[Any], src: npt.NDArray[Any], where: Mask) -> None:
    """dst[where] = src[where], in place (OpenCV's masked copy: cheaper than boolean indexing on ragged masks)."""
    cv2.copyTo(src, np.ascontiguousarray(where).view(np.uint8), dst)


def unstable_share(pixels: Mask, box: tuple[int, int, int, int], unstable: Mask) -> float:
    """Share of a region's pixels (`pixels`, cropped to `box`) that are unstable or next to an unstable pixel.

    Both are grown by one pixel: the region, so the gaps a morphological closing bridged between flickering
    digits count too; the unstable pixels, because the neighbourhood test misses the outermost pixel of a
    changing texture (its neighbour already had the new value)."""
    x1, y1, x2, y2 = box
    h, w = unstable.shape
    ax1, ay1, ax2, ay2 = max(0, x1 - 2), max(0, y1 - 2), min(w, x2 + 2), min(h, y2 + 2)
    own = np.zeros((ay2 - ay1, ax2 - ax1), np.uint8)
    own[y1 - ay1:y2 - ay1, x1 - ax1:x2 - ax1] = pixels.astype(np.uint8)
    grown = np.asarray(cv2.dilate(own, _GROW), dtype=bool)
    n = int(grown.sum())
    if n == 0:
        return 0.0
    near = np.asarray(cv2.dilate(unstable[ay1:ay2, ax1:ax2].astype(np.uint8), _GROW), dtype=bool)
    return float(near[grown].sum()) / n
