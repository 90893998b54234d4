"""Actors: turn a scenario's actor specs into the 3D ``Thing`` drawn at time t.

Each builder is a pure function of (pose, parameters, time); per-actor randomness (stall goods, pile
layout) comes from a generator seeded by the scenario seed and the actor's index, so a frame is a pure
function of (scenario, t).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gridwatch.synth.paths import state_at
from gridwatch.synth.primitives import (
    Bgr,
    Blob,
    Face,
    FloatArray,
    Line,
    Pose,
    Thing,
    cuboid_faces,
    local_box,
    rgb_to_bgr,
    shade,
    shaded_box,
)
from gridwatch.synth.scenario import (
    BulkySpec,
    CarSpec,
    DropSpec,
    LitterSpec,
    PersonSpec,
    Scenario,
    StallSpec,
    WireSpec,
)
from gridwatch.synth.world import StreetFrame

CLASSES: tuple[str, ...] = ("car", "person", "litter", "stall", "wire")
CAR, PERSON, LITTER, STALL, WIRE = range(5)

#: A cable counts as "down" (labelled ``wire``) once any part of it is lower than this.
WIRE_LOW_M = 2.5


class Actor(Protocol):
    def things_at(self, t: float) -> list[Thing]: ...


def _alive(t: float, start: float, until: float | None) -> bool:
    return t >= start and (until is None or t < until)


def _footprint(pose: Pose, length: float, width: float, grow: float = 0.15) -> FloatArray:
    corners = local_box(0.0, 0.0, 0.0, length + 2 * grow, width + 2 * grow, 0.0)[:4]
    return pose.to_world(corners)[:, :2]


def _disc(pose: Pose, radius: float, n: int = 10) -> FloatArray:
    ang = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([pose.east + radius * np.cos(ang), pose.north + radius * np.sin(ang)], axis=1)


# ------------------------------------------------------------------------------------------ car
_CAR_SHAPES = {  # body height, cabin height, cabin length fraction, cabin x-offset fraction
    "sedan": (0.62, 0.5, 0.5, -0.05),
    "suv": (0.8, 0.6, 0.6, -0.08),
    "van": (0.85, 0.75, 0.82, -0.06),
}


def car_thing(key: str, pose: Pose, spec: CarSpec) -> Thing:
    body_h, cab_h, cab_frac, cab_off = _CAR_SHAPES[spec.style]
    length, width, clear = spec.length_m, spec.width_m, 0.3
    colour = rgb_to_bgr(spec.colour)
    glass: Bgr = (70, 60, 50)
    faces: list[Face] = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            wheel = local_box(sx * 0.33 * length, sy * (width / 2 - 0.12), 0.0, 0.64, 0.22, 0.62)
            faces += shaded_box(pose, wheel, (28, 28, 30))
    faces += shaded_box(pose, local_box(0.0, 0.0, clear, length, width, body_h), colour)
    cabin = pose.to_world(local_box(cab_off * length, 0.0, clear + body_h, cab_frac * length, width * 0.9, cab_h))
    faces += cuboid_faces(cabin, [glass, shade(colour, 1.1), glass, glass, glass, glass])
    for sy in (-1, 1):  # head lights and tail lights
        faces += shaded_box(
            pose, local_box(length / 2, sy * width * 0.32, clear + 0.35, 0.04, 0.3, 0.12), (200, 235, 245)
        )
        faces += shaded_box(
            pose, local_box(-length / 2, sy * width * 0.32, clear + 0.35, 0.04, 0.3, 0.12), (30, 30, 200)
        )
    return Thing(key, CAR, pose.anchor, faces=faces, shadow=_footprint(pose, length, width))


# --------------------------------------------------------------------------------------- person
def _swing(corners: FloatArray, pivot_z: float, angle: float) -> FloatArray:
    """Rotate local points about the lateral (y) axis through height ``pivot_z``."""
    x, y, z = corners[:, 0], corners[:, 1], corners[:, 2] - pivot_z
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([x * c - z * s, y, pivot_z + x * s + z * c], axis=1)


def person_thing(key: str, pose: Pose, spec: PersonSpec, distance: float, moving: bool) -> Thing:
    h = spec.height_m
    k = h / 1.72
    hip, shoulder = 0.47 * h, 0.81 * h
    swing = 0.45 * math.sin(2 * math.pi * distance / 1.4) if moving else 0.0
    shirt, trousers, skin = rgb_to_bgr(spec.shirt), rgb_to_bgr(spec.trousers), rgb_to_bgr(spec.skin)
    faces: list[Face] = []
    for side, sign in ((-1, 1.0), (1, -1.0)):
        leg = local_box(0.0, side * 0.09 * k, 0.0, 0.15 * k, 0.14 * k, hip)
        faces += shaded_box(pose, _swing(leg, hip, sign * swing), trousers)
        arm = local_box(0.0, side * 0.24 * k, shoulder - 0.36 * h, 0.1 * k, 0.09 * k, 0.36 * h)
        faces += shaded_box(pose, _swing(arm, shoulder, -sign * swing * 0.8), shirt)
    faces += shaded_box(pose, local_box(0.0, 0.0, hip - 0.02, 0.22 * k, 0.38 * k, shoulder - hip + 0.04), shirt)
    head_c = pose.to_world(np.array([[0.0, 0.0, 0.91 * h]]))[0]
    hair_c = pose.to_world(np.array([[-0.02, 0.0, 0.945 * h]]))[0]
    blobs = [Blob(head_c, 0.1 * k, 0.12 * k, skin), Blob(hair_c, 0.095 * k, 0.07 * k, (30, 30, 35))]
    return Thing(key, PERSON, pose.anchor, faces=faces, blobs=blobs, shadow=_disc(pose, 0.3))


# --------------------------------------------------------------------------------------- litter
def litter_thing(key: str, pose: Pose, item: str, colour: Bgr, size: float, seed: int) -> Thing:
    rng = np.random.default_rng(seed)
    faces: list[Face] = []
    blobs: list[Blob] = []
    if item == "box":
        faces += shaded_box(pose, local_box(0.0, 0.0, 0.0, size, size * 0.75, size * 0.6), colour)
    elif item == "pile":
        for _ in range(int(rng.integers(3, 7))):
            dx, dy = rng.uniform(-0.35, 0.35, 2) * size
            r = float(rng.uniform(0.18, 0.32)) * size
            col = tuple(int(c) for c in rng.integers(20, 240, 3))
            c = pose.to_world(np.array([[dx, dy, r * 0.8]]))[0]
            blobs.append(Blob(c, r, r * 0.8, (col[0], col[1], col[2])))
    else:  # a tied bin bag: a squat lump, a knot, and a glossy highlight
        c = pose.to_world(np.array([[0.0, 0.0, size * 0.42]]))[0]
        blobs.append(Blob(c, size * 0.5, size * 0.42, colour))
        knot = pose.to_world(np.array([[0.0, 0.0, size * 0.86]]))[0]
        blobs.append(Blob(knot, size * 0.1, size * 0.1, shade(colour, 0.8)))
        hi = pose.to_world(np.array([[0.0, -size * 0.15, size * 0.55]]))[0]
        blobs.append(Blob(hi, size * 0.12, size * 0.08, shade(colour, 1.6) if sum(colour) > 60 else (90, 90, 90)))
    return Thing(key, LITTER, pose.anchor, faces=faces, blobs=blobs, shadow=_disc(pose, size * 0.55))


# ---------------------------------------------------------------------------------------- bulky
def bulky_thing(key: str, pose: Pose, spec: BulkySpec) -> Thing:
    """An old fridge standing on the sidewalk or a mattress lying flat. Unlabelled
    (class None): no detector class covers bulky waste, so only the scene-change stage can see it."""
    size, colour = spec.size_m, rgb_to_bgr(spec.colour)
    if spec.item == "mattress":
        length, depth = size, 0.5 * size
        faces = shaded_box(pose, local_box(0.0, 0.0, 0.0, length, depth, 0.22), colour)
        faces += shaded_box(pose, local_box(0.15 * length, 0.1 * depth, 0.22, 0.3 * length, 0.4 * depth, 0.005),
                            shade(colour, 0.75))  # a stain
    else:  # a fridge: a plain upright box (a door gap and a handle made the demo model call it a person, 0.2)
        length = depth = 0.7
        faces = shaded_box(pose, local_box(0.0, 0.0, 0.0, length, depth, size), colour)
    return Thing(key, None, pose.anchor, faces=faces, shadow=_footprint(pose, length, depth))


# ---------------------------------------------------------------------------------------- stall
def _stripes(pose: Pose, length: float, depth: float, z: float, cols: tuple[Bgr, Bgr]) -> list[Face]:
    faces: list[Face] = []
    n = 6
    for i in range(n):
        x0 = -length / 2 + i * length / n
        quad = np.array(
            [[x0, -depth / 2, z], [x0 + length / n, -depth / 2, z], [x0 + length / n, depth / 2, z], [x0, depth / 2, z]]
        )
        faces.append(Face(pose.to_world(quad), cols[i % 2], two_sided=True))
        front = np.array(
            [
                [x0, -depth / 2, z - 0.28],
                [x0 + length / n, -depth / 2, z - 0.28],
                [x0 + length / n, -depth / 2, z],
                [x0, -depth / 2, z],
            ]
        )
        faces.append(Face(pose.to_world(front), shade(cols[i % 2], 0.85), two_sided=True))
    return faces


def _umbrella(pose: Pose, x: float, radius: float, z: float, cols: tuple[Bgr, Bgr]) -> list[Face]:
    faces = shaded_box(pose, local_box(x, 0.0, 0.0, 0.05, 0.05, z + 0.2), (90, 90, 90))
    apex = np.array([x, 0.0, z + 0.35])
    n = 10
    for i in range(n):
        a0, a1 = 2 * math.pi * i / n, 2 * math.pi * (i + 1) / n
        p0 = np.array([x + radius * math.cos(a0), radius * math.sin(a0), z])
        p1 = np.array([x + radius * math.cos(a1), radius * math.sin(a1), z])
        faces.append(Face(pose.to_world(np.stack([apex, p0, p1])), cols[i % 2], two_sided=True))
    return faces


def stall_thing(key: str, pose: Pose, spec: StallSpec, seed: int) -> Thing:
    rng = np.random.default_rng(seed)
    length, depth = spec.length_m, 0.8
    cols = (rgb_to_bgr(spec.canopy), rgb_to_bgr(spec.canopy2))
    faces: list[Face] = []
    table_z = 0.85
    if spec.style == "cart":
        faces += shaded_box(pose, local_box(0.0, 0.0, 0.25, length, depth, table_z - 0.25), rgb_to_bgr(spec.table))
        for sx in (-1, 1):
            faces += shaded_box(
                pose, local_box(sx * length * 0.3, -depth / 2 - 0.03, 0.0, 0.5, 0.06, 0.5), (25, 25, 25)
            )
    else:
        faces += shaded_box(pose, local_box(0.0, 0.0, 0.0, length, depth, table_z), rgb_to_bgr(spec.table))
    x = -length / 2 + 0.1
    while x < length / 2 - 0.25:  # goods on the table
        w = float(rng.uniform(0.15, 0.35))
        col = tuple(int(c) for c in rng.integers(30, 250, 3))
        goods = local_box(x + w / 2, float(rng.uniform(-0.2, 0.2)), table_z, w, 0.25, float(rng.uniform(0.08, 0.3)))
        faces += shaded_box(pose, goods, (col[0], col[1], col[2]))
        x += w + 0.05
    if spec.style == "canopy":
        for sx in (-1, 1):
            for sy in (-1, 1):
                faces += shaded_box(
                    pose, local_box(sx * (length / 2 + 0.1), sy * 0.6, 0.0, 0.04, 0.04, 2.2), (80, 80, 80)
                )
        faces += _stripes(pose, length + 0.4, 1.5, 2.2, cols)
    else:
        radius = 1.25 if spec.style == "umbrella" else 0.9
        faces += _umbrella(pose, 0.0, radius, 2.05, cols)
    return Thing(key, STALL, pose.anchor, faces=faces, shadow=_footprint(pose, length + 0.3, 1.4))


# ----------------------------------------------------------------------------------------- wire
def pole_thing(key: str, frame: StreetFrame, along: float, out: float, height: float) -> Thing:
    pose = frame.pose(along, out)
    faces = shaded_box(pose, local_box(0.0, 0.0, 0.0, 0.2, 0.2, height), (105, 110, 110))
    faces += shaded_box(pose, local_box(0.0, -0.5, height - 0.4, 0.12, 1.0, 0.12), (105, 110, 110))
    return Thing(key, None, pose.anchor, faces=faces, shadow=None)


def _wire_shapes(frame: StreetFrame, spec: WireSpec, n: int = 40) -> tuple[FloatArray, FloatArray]:
    """Hanging and lying shapes with the same sample count, so the fall is a per-point blend."""
    s = np.linspace(0.0, 1.0, n)
    top = spec.pole_height_m - 0.35
    sign = 1.0 if spec.span_along >= 0 else -1.0
    hang_al = spec.pole_along + s * spec.span_along
    hang_z = top - 0.9 * 4 * s * (1 - s) - 0.2 * s
    hang = np.column_stack([frame.to_enu(hang_al, np.full(n, spec.pole_out - 0.5)), hang_z])
    # Lying: first share of the samples runs down the pole, the rest snakes along the ground.
    drop_n = max(3, int(n * spec.pole_height_m / (spec.pole_height_m + spec.lie_length_m)))
    d = np.linspace(0.0, 1.0, drop_n)
    down_al = spec.pole_along + sign * (0.15 + 0.5 * d**2)
    down_out = spec.pole_out - 0.5 + d * 0.5 + (spec.lie_out - spec.pole_out) * d**3 * 0.3
    down_z = top * (1 - d) + 0.04 * d
    g = np.linspace(0.0, 1.0, n - drop_n + 1)[1:]
    lie_al = down_al[-1] + sign * g * spec.lie_length_m
    start_out = down_out[-1]
    lie_out = start_out + (spec.lie_out - start_out) * np.sin(g * math.pi / 2) + 0.3 * np.sin(g * 9.0)
    ground = np.column_stack(
        [
            frame.to_enu(np.concatenate([down_al, lie_al]), np.concatenate([down_out, lie_out])),
            np.concatenate([down_z, np.full(len(g), 0.04)]),
        ]
    )
    return hang, ground


def wire_fall_progress(spec: WireSpec, t: float) -> float:
    """Fall progress in [0, 1]: 0 hanging, 1 at rest on the ground."""
    if spec.fall_s is None or t < spec.fall_s:
        return 0.0
    return min(1.0, (t - spec.fall_s) / spec.fall_duration_s)


def wire_thing(key: str, frame: StreetFrame, spec: WireSpec, t: float) -> Thing:
    hang, ground = _wire_shapes(frame, spec)
    p = wire_fall_progress(spec, t)
    s = np.linspace(0.0, 1.0, len(hang))[:, None]
    ease = np.clip(p * p * (1.0 + 0.6 * s), 0.0, 1.0)  # the free end leads the fall
    pts = hang + (ground - hang) * ease
    pts[:, 2] = np.maximum(pts[:, 2], 0.03)
    low_pts = pts[pts[:, 2] < WIRE_LOW_M]
    anchor = np.array([*ground[-len(ground) // 3, :2], 0.0])
    line = Line(pts, spec.thickness_m, rgb_to_bgr(spec.colour), min_px=2)
    if len(low_pts) < 2:  # intact or only just starting to sag: scenery, not an incident
        return Thing(key, None, anchor, lines=[line])
    # Label only the low stretch: that is what "fallen wire" means, and the part up the pole is often
    # out of frame, which would otherwise make the box mostly out of view.
    return Thing(key, WIRE, anchor, lines=[line], label_points=low_pts, label_pad_m=spec.thickness_m)


def wire_rest_point(frame: StreetFrame, spec: WireSpec) -> FloatArray:
    """Ground point at the middle of the lying stretch (where the incident is reported)."""
    _, ground = _wire_shapes(frame, spec)
    on_ground = ground[ground[:, 2] < 0.1]
    return np.asarray(on_ground[len(on_ground) // 2, :2], dtype=np.float64)


# --------------------------------------------------------------------------------------- actors
@dataclass(frozen=True)
class CarActor:
    frame: StreetFrame
    spec: CarSpec

    def things_at(self, t: float) -> list[Thing]:
        st = state_at(self.spec.waypoints, t)
        if st is None or not _alive(t, self.spec.waypoints[0].t, self.spec.until_s):
            return []
        return [car_thing(self.spec.id, self.frame.pose(st.along, st.out, st.d_along, st.d_out), self.spec)]


@dataclass(frozen=True)
class PersonActor:
    frame: StreetFrame
    spec: PersonSpec

    def things_at(self, t: float) -> list[Thing]:
        st = state_at(self.spec.waypoints, t)
        if st is None or not _alive(t, self.spec.waypoints[0].t, self.spec.until_s):
            return []
        pose = self.frame.pose(st.along, st.out, st.d_along, st.d_out)
        return [person_thing(self.spec.id, pose, self.spec, st.distance, st.moving)]


@dataclass(frozen=True)
class LitterActor:
    key: str
    pose: Pose
    t: float
    until_s: float | None
    item: str
    colour: Bgr
    size: float
    seed: int

    def things_at(self, t: float) -> list[Thing]:
        if not _alive(t, self.t, self.until_s):
            return []
        return [litter_thing(self.key, self.pose, self.item, self.colour, self.size, self.seed)]


@dataclass(frozen=True)
class BulkyActor:
    frame: StreetFrame
    spec: BulkySpec

    def things_at(self, t: float) -> list[Thing]:
        if not _alive(t, self.spec.t, self.spec.until_s):
            return []
        yaw = math.radians(self.spec.yaw_deg)
        pose = self.frame.pose(self.spec.along, self.spec.out, math.cos(yaw), math.sin(yaw))
        return [bulky_thing(self.spec.id, pose, self.spec)]


@dataclass(frozen=True)
class StallActor:
    frame: StreetFrame
    spec: StallSpec
    seed: int

    def things_at(self, t: float) -> list[Thing]:
        if not _alive(t, self.spec.t, self.spec.until_s):
            return []
        yaw = math.radians(self.spec.yaw_deg)
        pose = self.frame.pose(self.spec.along, self.spec.out, math.cos(yaw), math.sin(yaw))
        return [stall_thing(self.spec.id, pose, self.spec, self.seed)]


@dataclass(frozen=True)
class WireActor:
    frame: StreetFrame
    spec: WireSpec

    def things_at(self, t: float) -> list[Thing]:
        s = self.spec
        return [
            pole_thing(f"{s.id}/pole", self.frame, s.pole_along, s.pole_out, s.pole_height_m),
            wire_thing(s.id, self.frame, s, t),
        ]


@dataclass(frozen=True)
class SceneryActor:
    """Static unlabelled props: street-light poles and an intact overhead cable."""

    things: tuple[Thing, ...]

    def things_at(self, t: float) -> list[Thing]:
        return list(self.things)


def drop_position(frame: StreetFrame, person: PersonSpec, drop: DropSpec) -> tuple[float, float]:
    """Street (along, out) where a dropped item lands: beside the person at the drop time."""
    st = state_at(person.waypoints, drop.t)
    if st is None:
        st = state_at(person.waypoints, person.waypoints[0].t)
    assert st is not None
    # left of the walking direction in street coordinates (out axis is clockwise from along)
    return st.along + st.d_out * drop.side_m, st.out - st.d_along * drop.side_m


def _street_props(frame: StreetFrame, scenario: Scenario) -> SceneryActor:
    spec = scenario.street
    things = [pole_thing(f"pole{i}", frame, a, 0.5, 7.5) for i, a in enumerate(spec.poles)]
    if spec.overhead_wire and len(spec.poles) >= 2:
        ps = sorted(spec.poles)
        for i, (a, b) in enumerate(itertools.pairwise(ps)):
            wspec = WireSpec(kind="wire", id=f"overhead{i}", pole_along=a, span_along=b - a, pole_height_m=7.5)
            things.append(wire_thing(f"overhead{i}", frame, wspec, 0.0))
    return SceneryActor(tuple(things))


def build_actors(scenario: Scenario, frame: StreetFrame) -> list[Actor]:
    """All actors of a scenario, including the litter items people drop."""
    actors: list[Actor] = [_street_props(frame, scenario)]
    for i, spec in enumerate(scenario.actors):
        seed = scenario.seed * 1000 + i
        if isinstance(spec, CarSpec):
            actors.append(CarActor(frame, spec))
        elif isinstance(spec, PersonSpec):
            actors.append(PersonActor(frame, spec))
            if spec.drop is not None:
                al, out = drop_position(frame, spec, spec.drop)
                pose = frame.pose(al, out)
                d = spec.drop
                actors.append(
                    LitterActor(f"{spec.id}/drop", pose, d.t, d.pickup_s, d.item, rgb_to_bgr(d.colour), d.size_m, seed)
                )
        elif isinstance(spec, LitterSpec):
            pose = frame.pose(spec.along, spec.out)
            actors.append(
                LitterActor(spec.id, pose, spec.t, spec.until_s, spec.item, rgb_to_bgr(spec.colour), spec.size_m, seed)
            )
        elif isinstance(spec, BulkySpec):
            actors.append(BulkyActor(frame, spec))
        elif isinstance(spec, StallSpec):
            actors.append(StallActor(frame, spec, seed))
        else:
            actors.append(WireActor(frame, spec))
    return actors
