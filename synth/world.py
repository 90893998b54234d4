"""The static street: street coordinates <-> ENU, zones, and the scenery drawn behind the actors.

Pure geometry (no pixels). The street frame is described in ``synth.scenario``; the camera's ground
point (ENU origin) sits at ``along = 0, out = -kerb_distance_m``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gridwatch.synth.primitives import Bgr, Face, FloatArray, Pose, rgb_to_bgr
from gridwatch.synth.scenario import StreetSpec

#: Zones every scene defines, in priority order for "which zone is this point in".
ZONE_NAMES = ("kerb_no_parking", "sidewalk", "road")


@dataclass(frozen=True)
class StreetFrame:
    """Maps street coordinates (along, out) to ENU metres and back."""

    bearing_deg: float
    kerb_distance_m: float

    @property
    def u(self) -> FloatArray:
        """ENU unit vector of +along."""
        b = math.radians(self.bearing_deg)
        return np.array([math.sin(b), math.cos(b)])

    @property
    def v(self) -> FloatArray:
        """ENU unit vector of +out (90 degrees clockwise from +along)."""
        b = math.radians(self.bearing_deg + 90.0)
        return np.array([math.sin(b), math.cos(b)])

    def to_enu(self, along: FloatArray | float, out: FloatArray | float) -> FloatArray:
        """Street (along, out) -> ENU (east, north); shape (..., 2)."""
        a = np.asarray(along, dtype=np.float64)[..., None]
        o = np.asarray(out, dtype=np.float64)[..., None] + self.kerb_distance_m
        result: FloatArray = a * self.u + o * self.v
        return result

    def to_street(self, en: FloatArray) -> FloatArray:
        """ENU (..., 2) -> street (..., 2) as (along, out)."""
        p = np.asarray(en, dtype=np.float64)
        return np.stack([p @ self.u, p @ self.v - self.kerb_distance_m], axis=-1)

    def direction(self, d_along: float, d_out: float) -> tuple[float, float]:
        """A street-frame direction as an ENU unit vector (falls back to +along for zero length)."""
        vec = d_along * self.u + d_out * self.v
        norm = float(np.hypot(vec[0], vec[1]))
        if norm < 1e-9:
            return float(self.u[0]), float(self.u[1])
        return float(vec[0] / norm), float(vec[1] / norm)

    def pose(self, along: float, out: float, d_along: float = 1.0, d_out: float = 0.0) -> Pose:
        e, n = self.to_enu(along, out)
        return Pose(float(e), float(n), self.direction(d_along, d_out))


def road_width(spec: StreetSpec) -> float:
    return spec.kerb_lane_m + spec.lanes * spec.lane_width_m


def lane_out(spec: StreetSpec, lane: int) -> float:
    """`out` of the centre line of traffic lane ``lane`` (0 = next to the kerb strip)."""
    return -(spec.kerb_lane_m + spec.lane_width_m * (lane + 0.5))


@dataclass(frozen=True)
class Zone:
    name: str
    street_rect: tuple[float, float, float, float]  # along0, along1, out0, out1
    enu: FloatArray  # (4, 2) ground polygon, counter-clockwise

    def contains_street(self, along: float, out: float) -> bool:
        a0, a1, o0, o1 = self.street_rect
        return a0 <= along <= a1 and o0 <= out <= o1


def _rect(frame: StreetFrame, a0: float, a1: float, o0: float, o1: float) -> FloatArray:
    along = np.array([a0, a1, a1, a0])
    out = np.array([o0, o0, o1, o1])
    return frame.to_enu(along, out)


def make_zones(frame: StreetFrame, spec: StreetSpec) -> list[Zone]:
    """The named ground zones the incident rules use, as ENU polygons."""
    half = spec.zone_length_m / 2.0
    rects = {
        "kerb_no_parking": (-half, half, -spec.kerb_lane_m, 0.0),
        "sidewalk": (-half, half, 0.0, spec.sidewalk_width_m),
        "road": (-half, half, -road_width(spec), 0.0),
    }
    return [Zone(name, r, _rect(frame, *r)) for name, r in rects.items()]


def zone_of(zones: list[Zone], frame: StreetFrame, en: FloatArray) -> str | None:
    """First zone (in ``ZONE_NAMES`` priority) containing a ground point."""
    along, out = frame.to_street(np.asarray(en, dtype=np.float64)[:2])
    for zone in zones:
        if zone.contains_street(float(along), float(out)):
            return zone.name
    return None


# ------------------------------------------------------------------------------------- scenery
@dataclass(frozen=True)
class Scenery:
    """Flat ground polygons (drawn first, in order) and the vertical facade faces behind them."""

    ground: list[Face]
    facade: list[Face]


_FAR = 400.0


def _ground(frame: StreetFrame, a0: float, a1: float, o0: float, o1: float, colour: Bgr) -> Face:
    en = _rect(frame, a0, a1, o0, o1)
    return Face(np.hstack([en, np.zeros((4, 1))]), colour, two_sided=True)


def _lane_marks(frame: StreetFrame, spec: StreetSpec, phase: float) -> list[Face]:
    marks: list[Face] = []
    white = (215, 215, 215)
    lines = [-spec.kerb_lane_m] + [-(spec.kerb_lane_m + spec.lane_width_m * i) for i in range(1, spec.lanes)]
    for i, o in enumerate(lines):
        dashed = i > 0
        if not dashed:
            marks.append(_ground(frame, -_FAR / 4, _FAR / 4, o - 0.06, o + 0.06, white))
            continue
        for a in np.arange(-_FAR / 4 + phase, _FAR / 4, 9.0):
            marks.append(_ground(frame, float(a), float(a) + 3.0, o - 0.07, o + 0.07, white))
    return marks


def _facade(frame: StreetFrame, spec: StreetSpec, rng: np.random.Generator) -> list[Face]:
    o = spec.sidewalk_width_m
    base = rgb_to_bgr(spec.facade_colour)
    faces = [_vertical(frame, -_FAR / 2, _FAR / 2, o, 0.0, 30.0, base)]
    x = -60.0 + float(rng.uniform(0, 4))
    while x < 60.0:
        shop_w = float(rng.uniform(4.0, 9.0))
        col = tuple(int(c) for c in rng.integers(40, 230, 3))
        faces.append(_vertical(frame, x + 0.3, x + shop_w - 0.3, o - 0.01, 0.0, 3.2, (col[0], col[1], col[2])))
        door = x + shop_w * float(rng.uniform(0.2, 0.7))
        faces.append(_vertical(frame, door, door + 1.2, o - 0.02, 0.0, 2.4, (40, 45, 50)))
        for wx in np.arange(x + 0.8, x + shop_w - 1.0, 2.0):
            for wz in (4.2, 7.4, 10.6):
                faces.append(_vertical(frame, float(wx), float(wx) + 1.1, o - 0.01, wz, wz + 1.5, (90, 80, 70)))
        x += shop_w
    return faces


def _vertical(frame: StreetFrame, a0: float, a1: float, out: float, z0: float, z1: float, col: Bgr) -> Face:
    en = frame.to_enu(np.array([a0, a1, a1, a0]), np.full(4, out))
    z = np.array([[z0], [z0], [z1], [z1]])
    return Face(np.hstack([en, z]), col, two_sided=True)


def make_scenery(frame: StreetFrame, spec: StreetSpec, rng: np.random.Generator) -> Scenery:
    """Ground layers (grass/verge, road, kerb strip, sidewalks, markings) and the facade."""
    road_g, walk_g = spec.road_grey, spec.sidewalk_grey
    near_edge = -road_width(spec)
    ground = [
        _ground(frame, -_FAR, _FAR, -_FAR, _FAR, (70, 110, 95)),
        _ground(frame, -_FAR, _FAR, near_edge, 0.0, (road_g, road_g, road_g + 4)),
        _ground(frame, -_FAR, _FAR, 0.0, spec.sidewalk_width_m + 0.5, (walk_g - 8, walk_g, walk_g + 6)),
        _ground(frame, -_FAR, _FAR, near_edge - spec.near_sidewalk_m, near_edge, (walk_g, walk_g, walk_g)),
        _ground(frame, -_FAR, _FAR, 0.0, 0.2, (200, 200, 200)),  # kerb stones
        _ground(frame, -_FAR, _FAR, near_edge - 0.2, near_edge, (200, 200, 200)),
    ]
    # Paving joints on the far sidewalk give texture (and litter something to hide against).
    for a in np.arange(-_FAR / 4, _FAR / 4, 1.5):
        ground.append(_ground(frame, float(a), float(a) + 0.05, 0.2, spec.sidewalk_width_m, (walk_g - 30,) * 3))
    ground.extend(_lane_marks(frame, spec, float(rng.uniform(0, 9))))
    facade = _facade(frame, spec, rng) if spec.facade else []
    return Scenery(ground, facade)


def pole_pose(frame: StreetFrame, along: float, out: float = 0.5) -> Pose:
    return frame.pose(along, out)
