"""The randomised scenario family used for training data.

Each call draws a camera pose, a street, a look and a cast of actors placed where the camera can see
them. The bounds are chosen around the kind of camera the demo uses (mast 3.5-9 m, looking across a
street at the far kerb) so a detector trained here transfers to the demo and to similar real mounts.
"""

from __future__ import annotations

import math

import numpy as np

from gridwatch.synth.scenario import (
    CameraSpec,
    CarSpec,
    DropSpec,
    LitterSpec,
    LookSpec,
    PersonSpec,
    Scenario,
    StallSpec,
    StreetSpec,
    Waypoint,
    WireSpec,
)
from gridwatch.synth.world import StreetFrame, lane_out, road_width

Rgb = tuple[int, int, int]
ActorList = list[CarSpec | PersonSpec | LitterSpec | StallSpec | WireSpec]

_CAR_COLOURS: list[Rgb] = [
    (240, 240, 240),
    (20, 20, 22),
    (150, 150, 155),
    (90, 90, 95),
    (180, 25, 25),
    (30, 60, 170),
    (230, 200, 40),
    (40, 100, 60),
    (120, 70, 40),
    (200, 200, 210),
    (90, 20, 30),
    (60, 140, 200),
]
_LITTER_COLOURS: list[Rgb] = [
    (20, 20, 22),
    (25, 25, 30),
    (235, 235, 235),
    (40, 80, 170),
    (60, 120, 60),
    (150, 120, 80),
    (200, 200, 60),
]


def _rgb(rng: np.random.Generator, lo: int = 20, hi: int = 240) -> Rgb:
    c = rng.integers(lo, hi, 3)
    return int(c[0]), int(c[1]), int(c[2])


def _pick(rng: np.random.Generator, items: list[Rgb]) -> Rgb:
    return items[int(rng.integers(len(items)))]


def _camera(rng: np.random.Generator, street: StreetSpec) -> CameraSpec:
    height = float(rng.uniform(3.5, 9.0))
    yaw = float(rng.uniform(-30.0, 30.0))
    aim = (street.kerb_distance_m + float(rng.uniform(-1.5, 3.5))) / math.cos(math.radians(yaw))
    tilt = math.degrees(math.atan2(height, aim)) + float(rng.uniform(-3.0, 3.0))
    return CameraSpec(
        height_m=height,
        tilt_deg=float(np.clip(tilt, 8.0, 60.0)),
        heading_deg=(street.bearing_deg + 90.0 + yaw) % 360.0,
        hfov_deg=float(rng.uniform(50.0, 80.0)),
        lat=float(rng.uniform(22.0, 40.0)),
        lon=float(rng.uniform(100.0, 122.0)),
    )


def _street(rng: np.random.Generator) -> StreetSpec:
    lanes = int(rng.integers(1, 4))
    lane_w = float(rng.uniform(2.8, 3.6))
    kerb_lane = float(rng.uniform(2.2, 3.0))
    width = kerb_lane + lanes * lane_w
    poles = [float(a) for a in rng.uniform(-25, 25, int(rng.integers(0, 3)))]
    return StreetSpec(
        bearing_deg=float(rng.uniform(0.0, 360.0)),
        kerb_distance_m=float(rng.uniform(max(5.0, width * 0.6), width + 6.0)),
        kerb_lane_m=kerb_lane,
        lanes=lanes,
        lane_width_m=lane_w,
        sidewalk_width_m=float(rng.uniform(3.0, 7.0)),
        near_sidewalk_m=float(rng.uniform(1.5, 5.0)),
        poles=poles,
        facade=bool(rng.random() < 0.9),
        road_grey=int(rng.integers(45, 120)),
        sidewalk_grey=int(rng.integers(110, 200)),
        facade_colour=_rgb(rng, 60, 230),
        overhead_wire=bool(rng.random() < 0.3),
    )


def _look(rng: np.random.Generator) -> LookSpec:
    return LookSpec(
        brightness=float(rng.uniform(0.55, 1.35)),
        colour_temp_k=float(rng.uniform(3000.0, 9500.0)),
        noise_sigma=float(rng.uniform(0.0, 8.0)),
        blur_sigma=float(rng.uniform(0.0, 1.2)) if rng.random() < 0.5 else 0.0,
        jpeg_quality=int(rng.integers(35, 96)),
        flicker=0.03,
        shadows=bool(rng.random() < 0.8),
    )


def _view_along(street: StreetSpec, cam: CameraSpec) -> tuple[float, float]:
    """`along` of the point the camera looks at on the kerb line, and the half-width seen there."""
    frame = StreetFrame(street.bearing_deg, street.kerb_distance_m)
    h = math.radians(cam.heading_deg)
    dist = cam.height_m / math.tan(math.radians(cam.tilt_deg))
    aim = np.array([math.sin(h), math.cos(h)]) * dist
    along, _ = frame.to_street(aim)
    half = dist * math.tan(math.radians(cam.hfov_deg) / 2.0)
    return float(along), max(3.0, half)


def _moving_cars(rng: np.random.Generator, st: StreetSpec, c: float, hw: float, dur: float) -> ActorList:
    cars: ActorList = []
    for i in range(int(rng.integers(0, 5))):
        lane = int(rng.integers(st.lanes))
        direction = -1.0 if lane % 2 == 0 else 1.0
        speed = float(rng.uniform(2.0, 13.0))
        a_mid = c + float(rng.uniform(-hw, hw))
        a0 = a_mid - direction * speed * float(rng.uniform(0.0, dur))
        out = lane_out(st, lane) + float(rng.uniform(-0.3, 0.3))
        wps = [Waypoint(t=0.0, along=a0, out=out), Waypoint(t=dur, along=a0 + direction * speed * dur, out=out)]
        cars.append(_car(rng, f"mv{i}", wps))
    return cars


def _car(rng: np.random.Generator, key: str, wps: list[Waypoint]) -> CarSpec:
    style = ("sedan", "suv", "van")[int(rng.choice(3, p=[0.6, 0.28, 0.12]))]
    length = float(rng.uniform(3.8, 4.9)) if style != "van" else float(rng.uniform(4.6, 5.8))
    return CarSpec(
        kind="car",
        id=key,
        style=style,
        colour=_pick(rng, _CAR_COLOURS) if rng.random() < 0.8 else _rgb(rng),
        length_m=length,
        width_m=float(rng.uniform(1.65, 2.0)),
        waypoints=wps,
    )


def _parked_cars(rng: np.random.Generator, st: StreetSpec, c: float, hw: float, dur: float) -> ActorList:
    cars: ActorList = []
    for i in range(int(rng.choice(4, p=[0.2, 0.4, 0.25, 0.15]))):
        along = c + float(rng.uniform(-hw, hw))
        out = -st.kerb_lane_m / 2 + float(rng.uniform(-0.3, 0.3))
        skew = float(rng.uniform(-0.4, 0.4))
        direction = 1.0 if rng.random() < 0.5 else -1.0
        wps = [Waypoint(t=0.0, along=along - direction, out=out - skew), Waypoint(t=0.01, along=along, out=out)]
        cars.append(_car(rng, f"pk{i}", wps))
    return cars


def _people(rng: np.random.Generator, st: StreetSpec, c: float, hw: float, dur: float) -> ActorList:
    people: ActorList = []
    for i in range(int(rng.integers(0, 5))):
        out = (
            float(rng.uniform(0.4, st.sidewalk_width_m - 0.4))
            if rng.random() < 0.85
            else float(rng.uniform(-road_width(st), 0.0))
        )
        a0 = c + float(rng.uniform(-hw, hw))
        if rng.random() < 0.3:  # standing
            wps = [Waypoint(t=0.0, along=a0, out=out)]
        else:
            speed = float(rng.uniform(0.8, 1.8)) * (1 if rng.random() < 0.5 else -1)
            d_out = float(rng.uniform(-0.3, 0.3))
            wps = [
                Waypoint(t=0.0, along=a0 - speed * dur / 2, out=out),
                Waypoint(t=dur, along=a0 + speed * dur / 2, out=out + d_out),
            ]
        drop = None
        if rng.random() < 0.25 and len(wps) > 1:
            drop = DropSpec(
                t=float(rng.uniform(0.0, dur)),
                item="bag" if rng.random() < 0.8 else "box",
                colour=_pick(rng, _LITTER_COLOURS),
                size_m=float(rng.uniform(0.35, 0.65)),
            )
        people.append(
            PersonSpec(
                kind="person",
                id=f"p{i}",
                height_m=float(rng.uniform(1.5, 1.9)),
                shirt=_rgb(rng),
                trousers=_rgb(rng, 10, 140),
                skin=_pick(rng, [(230, 190, 160), (200, 160, 130), (150, 110, 80)]),
                waypoints=wps,
                drop=drop,
            )
        )
    return people


def _litter(rng: np.random.Generator, st: StreetSpec, c: float, hw: float, dur: float) -> ActorList:
    items: ActorList = []
    for i in range(int(rng.choice(5, p=[0.15, 0.3, 0.25, 0.2, 0.1]))):
        out = float(rng.uniform(-st.kerb_lane_m, st.sidewalk_width_m - 0.3))
        item = ("bag", "box", "pile")[int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
        items.append(
            LitterSpec(
                kind="litter",
                id=f"l{i}",
                along=c + float(rng.uniform(-hw, hw)),
                out=out,
                item=item,
                colour=_pick(rng, _LITTER_COLOURS) if item != "box" else _pick(rng, [(150, 110, 70), (190, 160, 120)]),
                size_m=float(rng.uniform(0.3, 0.7)) * (1.6 if item == "pile" else 1.0),
            )
        )
    return items


def _stalls(rng: np.random.Generator, st: StreetSpec, c: float, hw: float, dur: float) -> ActorList:
    stalls: ActorList = []
    for i in range(int(rng.choice(3, p=[0.35, 0.5, 0.15]))):
        style = ("canopy", "umbrella", "cart")[int(rng.integers(3))]
        stalls.append(
            StallSpec(
                kind="stall",
                id=f"s{i}",
                along=c + float(rng.uniform(-hw, hw)),
                out=float(rng.uniform(0.8, max(1.0, st.sidewalk_width_m - 1.0))),
                yaw_deg=float(rng.uniform(-20, 20)),
                style=style,
                canopy=_rgb(rng),
                canopy2=_rgb(rng, 150, 255),
                table=_rgb(rng, 40, 200),
                length_m=float(rng.uniform(1.0, 2.2)),
            )
        )
        stall = stalls[-1]
        assert isinstance(stall, StallSpec)
        if rng.random() < 0.6:  # a vendor behind the stall: partly hidden people are what the demo shows
            stalls.append(_vendor(rng, f"v{i}", stall.along + float(rng.uniform(-0.6, 0.6)), stall.out + 0.9))
    return stalls


def _vendor(rng: np.random.Generator, key: str, along: float, out: float) -> PersonSpec:
    return PersonSpec(
        kind="person",
        id=key,
        height_m=float(rng.uniform(1.5, 1.85)),
        shirt=_rgb(rng),
        trousers=_rgb(rng, 10, 140),
        skin=_pick(rng, [(230, 190, 160), (200, 160, 130), (150, 110, 80)]),
        waypoints=[Waypoint(t=0.0, along=along, out=out)],
    )


def _wires(rng: np.random.Generator, st: StreetSpec, c: float, hw: float, dur: float) -> ActorList:
    if rng.random() > 0.75:
        return []
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return [
        WireSpec(
            kind="wire",
            id="w0",
            pole_along=c + float(rng.uniform(-hw, hw)),
            pole_out=float(rng.uniform(0.3, 0.8)),
            pole_height_m=float(rng.uniform(5.5, 9.0)),
            span_along=sign * 30.0,
            fall_s=float(max(0.0, rng.uniform(-1.0 * dur, 0.8 * dur))),
            fall_duration_s=float(rng.uniform(0.8, 2.0)),
            lie_length_m=float(rng.uniform(3.0, 9.0)),
            lie_out=float(rng.uniform(-3.0, st.sidewalk_width_m - 0.3)),
            thickness_m=float(rng.uniform(0.05, 0.12)),
            colour=_pick(rng, [(20, 20, 20), (35, 35, 40), (60, 60, 60), (200, 120, 30)]),
        )
    ]


def random_scenario(rng: np.random.Generator, duration_s: float = 8.0, name: str = "random") -> Scenario:
    """One random short scene; sample a few frames from it."""
    street = _street(rng)
    cam = _camera(rng, street)
    c, hw = _view_along(street, cam)
    actors: ActorList = []
    for maker in (_moving_cars, _parked_cars, _people, _litter, _stalls, _wires):
        actors += maker(rng, street, c, hw, duration_s)
    resolution = (640, 360) if rng.random() < 0.8 else (640, 480)
    return Scenario(
        name=name,
        seed=int(rng.integers(0, 2**31 - 1)),
        duration_s=duration_s,
        fps=10.0,
        resolution=resolution,
        camera=cam,
        street=street,
        look=_look(rng),
        actors=list(actors),
    )
