"""Timed paths: piecewise-linear motion through waypoints, in street coordinates.

Kept separate from drawing so truth (rest intervals, drop positions) and rendering read the very
same motion.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from gridwatch.synth.scenario import Waypoint

#: Two waypoints closer than this (metres) mean "standing still".
REST_EPS_M = 0.01


@dataclass(frozen=True)
class PathState:
    along: float
    out: float
    d_along: float  # facing direction in street coordinates (unit or the last moving one)
    d_out: float
    distance: float  # metres travelled since the start (drives walking animation)
    moving: bool


@dataclass(frozen=True)
class RestInterval:
    start: float
    end: float | None  # None = rests until the end of the path (forever)
    along: float
    out: float


def _seg_len(a: Waypoint, b: Waypoint) -> float:
    return math.hypot(b.along - a.along, b.out - a.out)


def state_at(waypoints: list[Waypoint], t: float) -> PathState | None:
    """Position at time ``t``; None before the first waypoint (the actor is not there yet)."""
    if not waypoints or t < waypoints[0].t:
        return None
    d_al, d_out, dist = 1.0, 0.0, 0.0
    for a, b in itertools.pairwise(waypoints):
        length = _seg_len(a, b)
        if length > REST_EPS_M:
            d_al, d_out = (b.along - a.along) / length, (b.out - a.out) / length
        if t < b.t:
            span = b.t - a.t
            f = 0.0 if span <= 0 else (t - a.t) / span
            return PathState(
                a.along + f * (b.along - a.along),
                a.out + f * (b.out - a.out),
                d_al,
                d_out,
                dist + f * length,
                length > REST_EPS_M,
            )
        dist += length
    last = waypoints[-1]
    return PathState(last.along, last.out, d_al, d_out, dist, False)


def rest_intervals(waypoints: list[Waypoint]) -> list[RestInterval]:
    """Intervals in which the actor stands still: repeated positions, and the final waypoint."""
    rests: list[RestInterval] = []
    i = 0
    while i < len(waypoints):
        j = i
        while j + 1 < len(waypoints) and _seg_len(waypoints[i], waypoints[j + 1]) <= REST_EPS_M:
            j += 1
        w = waypoints[i]
        end = waypoints[j].t if j + 1 < len(waypoints) else None
        if j > i or end is None:
            rests.append(RestInterval(w.t, end, w.along, w.out))
        i = j + 1
    return rests
