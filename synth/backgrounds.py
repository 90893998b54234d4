"""Real empty backgrounds for composite scenarios: which shared clip, which stretch of it, and its ground scale.

Each entry describes a stretch of a real clip in ``../shared/data/real`` (never copied into the repository) that
holds no incident of its own, with what the compositor needs to paste objects plausibly:

* ``windows``: seconds of the clip that may be played, and how: ``forward`` (once; the scenario may not be
  longer) or ``pingpong`` (forward, then backward, repeated: an empty stretch of any length with real noise and
  compression and no jump in the picture);
* ``scale``: ground pixels per metre at two image rows, linear in between (a perspective view shrinks with
  distance); estimated by eye from people (ABODA: the walker is ~165 px tall with his feet at y 380 and ~120 px
  at y 120) and car roofs (the lot: ~290 px for a 4.5 m car);
* ``ground``: a polygon (frame pixels) on the paved ground where objects may lie, away from street furniture and
  from the real bag ABODA shows from 14.5 s;
* ``walkers``: real people's paths in the clip, as (clip time, foot x, foot y) keyframes from YOLOX-Nano person
  boxes (bottom centre, every 0.2-0.6 s, checked by eye); an owner drops a bag at their feet.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

Point = tuple[float, float]


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float
    mode: Literal["forward", "pingpong"]

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s

    def max_duration_s(self) -> float | None:
        """None = unbounded (pingpong)."""
        return None if self.mode == "pingpong" else self.length_s

    def clip_time(self, t: float) -> float:
        """The clip time shown at scenario time `t` (seconds from the scenario start)."""
        if self.mode == "forward":
            return self.start_s + min(t, self.length_s)
        period = 2 * self.length_s
        u = t % period
        return self.start_s + (u if u <= self.length_s else period - u)


@dataclass(frozen=True)
class Walker:
    """A real person's path: (clip time, foot x, foot y), sorted by time."""

    keys: tuple[tuple[float, float, float], ...]

    def foot_at(self, clip_t: float) -> Point | None:
        """Foot position at clip time `clip_t`, linear between keys; None outside the path."""
        ks = self.keys
        if clip_t < ks[0][0] or clip_t > ks[-1][0]:
            return None
        for (t0, x0, y0), (t1, x1, y1) in itertools.pairwise(ks):
            if t0 <= clip_t <= t1:
                f = 0.0 if t1 == t0 else (clip_t - t0) / (t1 - t0)
                return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
        return ks[-1][1], ks[-1][2]


@dataclass(frozen=True)
class Background:
    name: str
    clip: str  # relative to the shared data/real folder
    size: tuple[int, int]  # (width, height) of the decoded frames
    window: Window
    scale: tuple[Point, Point]  # ((y_top, px_per_m), (y_bottom, px_per_m))
    ground: tuple[Point, ...]
    walkers: dict[str, Walker] = field(default_factory=dict)

    def px_per_m(self, y: float) -> float:
        (ya, sa), (yb, sb) = self.scale
        f = min(1.0, max(0.0, (y - ya) / (yb - ya)))
        return sa + f * (sb - sa)


ABODA_CLIP = "videos/aboda_video4_abandoned_bag_sidewalk.avi"
LOT_CLIP = "videos/intel_car-detection_lot_aisle_negative.mp4"
_ABODA_SCALE = ((60.0, 60.0), (480.0, 110.0))
_ABODA_GROUND = ((40.0, 470.0), (120.0, 300.0), (280.0, 80.0), (470.0, 80.0), (470.0, 300.0), (430.0, 340.0),
                 (430.0, 470.0))

BACKGROUNDS: dict[str, Background] = {
    # The paved sidewalk before anybody enters (the owner of the real bag walks in at 9.5 s): played back and
    # forth, an empty sidewalk of any length.
    "aboda_empty": Background("aboda_empty", ABODA_CLIP, (720, 480), Window(0.0, 9.0, "pingpong"), _ABODA_SCALE,
                              _ABODA_GROUND),
    # After the real bag's owner has left (22.6 s): the real bag stands by the blue box from the first frame
    # (part of the view, not new), and a man walks up the sidewalk from 28.6 s to the top at 38 s.
    "aboda_walker": Background(
        "aboda_walker", ABODA_CLIP, (720, 480), Window(23.5, 39.0, "forward"), _ABODA_SCALE, _ABODA_GROUND,
        {"man": Walker(((30.23, 293.0, 431.0), (30.83, 320.0, 383.0), (31.23, 342.0, 346.0),
                        (31.63, 352.0, 345.0), (32.03, 360.0, 299.0), (32.43, 373.0, 267.0),
                        (33.03, 379.0, 237.0), (33.43, 385.0, 216.0), (34.03, 390.0, 195.0),
                        (34.63, 398.0, 163.0), (35.24, 403.0, 143.0), (35.84, 412.0, 122.0)))}),
    # Top-down parking-lot aisle: empty asphalt, real cars drive through at ~4.5-8.5, 14.5-19 and 24-30 s.
    "lot_aisle": Background("lot_aisle", LOT_CLIP, (768, 432), Window(0.0, 30.0, "forward"),
                            ((0.0, 70.0), (432.0, 70.0)), ((60.0, 70.0), (700.0, 70.0), (700.0, 380.0), (60.0, 380.0))),
}
