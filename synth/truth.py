"""Ground truth for a scenario: zones and incidents, derived from the same specs the renderer draws.

Start times are when the condition first holds on the world (the car came to rest in the zone, the
bag left the hand, the stall was set up, the cable came to rest on the ground); a detector-based
pipeline will report later by its dwell time. Positions are ENU metres and WGS-84.

Littering has a second moment: the dwell counts from when the owner has walked away (issue 6: the object "stays
after the owner moves away by the leave distance"; the rule's `dwell_s` is the time it lies unattended), so its
truth also says when the person who dropped it was first more than `LEAVE_DISTANCE_M` from it, or out of view
(`owner_left_s`). `start_s` stays the drop: the incident's started_at.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from gridwatch.calibration.camera import PinholeCamera
from gridwatch.calibration.geo import enu_to_wgs84
from gridwatch.synth.actors import wire_rest_point
from gridwatch.synth.paths import rest_intervals, state_at
from gridwatch.synth.render import project_polygon
from gridwatch.synth.scenario import BulkySpec, CarSpec, LitterSpec, PersonSpec, StallSpec, WireSpec
from gridwatch.synth.scene import Scene
from gridwatch.synth.world import Zone, zone_of

#: A car at rest for less than this is traffic (a pause), not parking.
MIN_PARKED_S = 3.0
#: Beyond this distance (m) from what they dropped, an owner has left it: the littering rule's default
#: `leave_distance_m` (the benchmark checks that the two agree).
LEAVE_DISTANCE_M = 4.0
_LEAVE_STEP_S = 0.05


@dataclass(frozen=True)
class ZoneTruth:
    name: str
    enu: list[list[float]]
    latlon: list[list[float]]
    image: list[list[float]]  # clipped to the image; empty if the zone is not in view


@dataclass(frozen=True)
class IncidentTruth:
    type: str
    actor: str
    start_s: float
    end_s: float | None
    east: float
    north: float
    lat: float
    lon: float
    zone: str | None
    pixel: list[float] | None  # projection of the ground point, None if behind the camera
    in_view: bool
    owner_left_s: float | None = None  # littering: the owner is first LEAVE_DISTANCE_M away (or gone)


@dataclass(frozen=True)
class Truth:
    scenario: str
    seed: int
    fps: float
    frame_count: int
    width: int
    height: int
    camera: PinholeCamera  # serialised field by field: the calibration a site config needs
    zones: list[ZoneTruth]
    incidents: list[IncidentTruth]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def write(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")


def _image_polygon(cam: PinholeCamera, enu: np.ndarray) -> list[list[float]]:
    pix = project_polygon(cam, np.hstack([enu, np.zeros((len(enu), 1))]))
    if pix is None:
        return []
    frame_rect = np.array([[0, 0], [cam.width, 0], [cam.width, cam.height], [0, cam.height]], np.float32)
    hull = cv2.convexHull(pix.astype(np.float32))
    area, inter = cv2.intersectConvexConvex(hull, frame_rect)
    if inter is None or area <= 0:
        return []
    return [[round(float(x), 2), round(float(y), 2)] for x, y in inter.reshape(-1, 2)]


def zone_truth(cam: PinholeCamera, zone: Zone) -> ZoneTruth:
    lat, lon = enu_to_wgs84(zone.enu[:, 0], zone.enu[:, 1], cam.lat, cam.lon)
    return ZoneTruth(
        zone.name,
        [[round(float(e), 4), round(float(n), 4)] for e, n in zone.enu],
        [[float(a), float(b)] for a, b in zip(lat, lon, strict=False)],
        _image_polygon(cam, zone.enu),
    )


def _incident(scene: Scene, kind: str, actor: str, start: float, end: float | None, en: np.ndarray,
              owner_left: float | None = None) -> IncidentTruth:
    cam = scene.camera
    lat, lon = enu_to_wgs84(float(en[0]), float(en[1]), cam.lat, cam.lon)
    uv = cam.ground_to_pixel(np.asarray(en, dtype=np.float64)[None, :2])[0]
    pixel = None if np.isnan(uv).any() else [round(float(uv[0]), 2), round(float(uv[1]), 2)]
    in_view = pixel is not None and 0 <= pixel[0] < cam.width and 0 <= pixel[1] < cam.height
    return IncidentTruth(
        kind,
        actor,
        round(start, 3),
        None if end is None else round(end, 3),
        round(float(en[0]), 3),
        round(float(en[1]), 3),
        float(lat),
        float(lon),
        zone_of(scene.zones, scene.frame, en),
        pixel,
        in_view,
        None if owner_left is None else round(owner_left, 3),
    )


def owner_left_at(spec: PersonSpec, drop_at: tuple[float, float], t0: float, until: float) -> float:
    """When `spec` is first more than `LEAVE_DISTANCE_M` from `drop_at` (street along, out) after `t0`, or leaves
    the scene (`until_s`, the end of the clip)."""
    end = min(until, spec.until_s) if spec.until_s is not None else until
    t = t0
    while t < end:
        st = state_at(spec.waypoints, t)
        if st is not None and math.hypot(st.along - drop_at[0], st.out - drop_at[1]) > LEAVE_DISTANCE_M:
            return t
        t += _LEAVE_STEP_S
    return end


def _parking(scene: Scene, spec: CarSpec) -> list[IncidentTruth]:
    found = []
    for rest in rest_intervals(spec.waypoints):
        end = rest.end if spec.until_s is None else min(rest.end or spec.until_s, spec.until_s)
        duration = (end if end is not None else scene.scenario.duration_s) - rest.start
        en = scene.frame.to_enu(rest.along, rest.out)
        if duration >= MIN_PARKED_S and zone_of(scene.zones, scene.frame, en) == "kerb_no_parking":
            found.append(_incident(scene, "illegal_parking", spec.id, rest.start, end, en))
    return found


def incidents(scene: Scene) -> list[IncidentTruth]:
    """Every incident the scenario stages, sorted by start time."""
    from gridwatch.synth.actors import drop_position

    out: list[IncidentTruth] = []
    frame = scene.frame
    for spec in scene.scenario.actors:
        if isinstance(spec, CarSpec):
            out += _parking(scene, spec)
        elif isinstance(spec, PersonSpec) and spec.drop is not None and spec.drop.pickup_s is None:
            al, o = drop_position(frame, spec, spec.drop)
            left = owner_left_at(spec, (al, o), spec.drop.t, scene.scenario.duration_s)
            out.append(_incident(scene, "littering", f"{spec.id}/drop", spec.drop.t, None, frame.to_enu(al, o),
                                 left))
        elif isinstance(spec, LitterSpec | BulkySpec):
            en = frame.to_enu(spec.along, spec.out)
            out.append(_incident(scene, "exposed_garbage", spec.id, spec.t, spec.until_s, en))
        elif isinstance(spec, StallSpec):
            out.append(
                _incident(scene, "street_vendor", spec.id, spec.t, spec.until_s, frame.to_enu(spec.along, spec.out))
            )
        elif isinstance(spec, WireSpec) and spec.fall_s is not None:
            rest = spec.fall_s + spec.fall_duration_s
            out.append(_incident(scene, "fallen_wire", spec.id, rest, None, wire_rest_point(frame, spec)))
    return sorted(out, key=lambda i: (i.start_s, i.type))


def build_truth(scene: Scene) -> Truth:
    cam, sc = scene.camera, scene.scenario
    return Truth(
        sc.name,
        sc.seed,
        sc.fps,
        sc.frame_count,
        cam.width,
        cam.height,
        cam,
        [zone_truth(cam, z) for z in scene.zones],
        incidents(scene),
    )
