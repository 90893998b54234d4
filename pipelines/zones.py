"""Zones in image coordinates and debounced zone membership.

A zone is a polygon in pixels of the analysed frame (a calibrated camera can declare it on the ground; the edge
projects it into the image before building the rule). An object is in the zone when the bottom-centre of its box
(where it touches the ground) is inside; membership changes only after `inertia` consecutive frames agree, so a
box that jitters across the edge does not restart the dwell clock (Frigate's `inertia`). The debounce decides
*whether* a track entered, never *when*: the entry time is the capture time of the first frame of the run that
flipped it, so at 1 analysed frame per second a car is not stamped 2 s late.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from gridwatch.pipelines.types import Point


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: tuple[Point, ...]

    def __post_init__(self) -> None:
        if len(self.polygon) < 3:
            raise ValueError(f"zone {self.name!r} needs at least 3 points, got {len(self.polygon)}")

    def contains(self, point: Point) -> bool:
        contour = np.asarray(self.polygon, dtype=np.float32).reshape(-1, 1, 2)
        return bool(cv2.pointPolygonTest(contour, (float(point[0]), float(point[1])), False) >= 0)


@dataclass
class _Membership:
    inside: bool
    since: float
    streak: int = 0
    streak_since: float = 0.0


@dataclass
class ZoneMembership:
    """Debounced in/out state per (track, zone). Call `update` once per frame per track; `forget` prunes."""

    inertia: int = 3
    _state: dict[tuple[int, str], _Membership] = field(default_factory=dict)

    def update(self, track_id: int, zone: Zone, anchor: Point, ts: float) -> float | None:
        """Capture time since which the track has been inside `zone` (debounced), or None when outside."""
        raw = zone.contains(anchor)
        key = (track_id, zone.name)
        state = self._state.get(key)
        if state is None:
            # A new track decides on its first frame: there is no earlier state to protect.
            state = self._state[key] = _Membership(raw, ts)
        elif raw == state.inside:
            state.streak = 0
        else:
            if state.streak == 0:
                state.streak_since = ts
            state.streak += 1
            if state.streak >= self.inertia:
                state.inside, state.since, state.streak = raw, state.streak_since, 0
        return state.since if state.inside else None

    def forget(self, track_ids: set[int]) -> None:
        for key in [k for k in self._state if k[0] in track_ids]:
            del self._state[key]

    def __len__(self) -> int:
        return len(self._state)
