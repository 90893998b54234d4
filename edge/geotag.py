"""Geotagging: pixel -> ground (metres) -> WGS-84 -> grid cell, and IncidentUpdate -> IncidentEvent.

The ground mapping comes from the camera's calibration (a pinhole pose or fitted point pairs). It is built for the
analysed frame size, so it is created on the first frame. Zones declared on the ground are projected into the
image here, once, so the rules only ever see pixel polygons.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import supervision as sv

from gridwatch.calibration.camera import PinholeCamera
from gridwatch.calibration.grid import GridLayer
from gridwatch.calibration.ground import GroundMapping
from gridwatch.edge.config import CalibrationConfig, PinholeCalibration, ZoneConfig
from gridwatch.pipelines.types import Box, IncidentUpdate, anchors_of
from gridwatch.pipelines.zones import Zone
from gridwatch.wire.events import EvidenceRef, GeoLocation, ImageBox, IncidentEvent, ModelRef, TrackedObject


def build_ground_mapping(cal: CalibrationConfig, width: int, height: int) -> GroundMapping:
    if isinstance(cal, PinholeCalibration):
        cam = PinholeCamera.from_hfov(
            width, height, cal.hfov_deg, cal.height_m, cal.tilt_deg, cal.heading_deg, cal.lat, cal.lon
        )
        return GroundMapping.from_camera(cam, pixel_error_px=cal.pixel_error_px)
    pixels = np.array([p.pixel for p in cal.points], dtype=float)
    lats = np.array([p.lat for p in cal.points])
    lons = np.array([p.lon for p in cal.points])
    return GroundMapping.from_point_pairs(pixels, lats, lons, pixel_error_px=cal.pixel_error_px)


def build_zones(zones: list[ZoneConfig], mapping: GroundMapping | None) -> tuple[Zone, ...]:
    out: list[Zone] = []
    for z in zones:
        if z.points is not None:
            out.append(Zone(z.name, tuple((float(x), float(y)) for x, y in z.points)))
            continue
        assert z.ground is not None and mapping is not None  # verify_ground_zones_calibrated
        lat = np.array([p[0] for p in z.ground])
        lon = np.array([p[1] for p in z.ground])
        uv = mapping.wgs84_to_pixel(lat, lon)
        out.append(Zone(z.name, tuple((float(u), float(v)) for u, v in uv)))
    return tuple(out)


@dataclass
class Geotagger:
    """Adds ground positions to detections and turns rule updates into wire events."""

    site_id: str
    gateway_id: str
    camera_id: str
    model: ModelRef
    mapping: GroundMapping | None = None
    grid: GridLayer | None = None

    def with_ground(self, detections: sv.Detections) -> sv.Detections:
        """A copy of `detections` with data['ground_xy'] (N, 2) metres (NaN where off the ground plane) and
        data['width_m'] (N,): the ground distance between the box's two bottom corners, the width the
        plausibility filter compares with what the class can measure (NaN where a corner is off the ground)."""
        out = sv.Detections(
            xyxy=detections.xyxy, confidence=detections.confidence, class_id=detections.class_id,
            tracker_id=detections.tracker_id, data=dict(detections.data),
        )
        if self.mapping is None or len(detections) == 0:
            return out
        anchors = anchors_of(detections.xyxy)
        ground = self.mapping.pixel_to_enu(anchors).astype(float)
        ground[~self.mapping.is_ground(anchors)] = np.nan
        out.data["ground_xy"] = ground
        out.data["width_m"] = self._bottom_width_m(np.asarray(detections.xyxy, dtype=np.float64))
        return out

    def _bottom_width_m(self, xyxy: np.ndarray) -> np.ndarray:
        assert self.mapping is not None
        left, right = xyxy[:, [0, 3]], xyxy[:, [2, 3]]
        gl = np.asarray(self.mapping.pixel_to_enu(left), dtype=np.float64)
        gr = np.asarray(self.mapping.pixel_to_enu(right), dtype=np.float64)
        width = np.hypot(gr[:, 0] - gl[:, 0], gr[:, 1] - gl[:, 1])
        width[~(self.mapping.is_ground(left) & self.mapping.is_ground(right))] = np.nan
        return width

    def location(self, anchor: tuple[float, float]) -> GeoLocation | None:
        if self.mapping is None:
            return None
        uv = np.array([anchor], dtype=float)
        if not bool(self.mapping.is_ground(uv)[0]):
            return None
        lat, lon = self.mapping.pixel_to_wgs84(uv)
        acc = float(self.mapping.accuracy_m(uv)[0])
        if self.mapping.fit_report is not None:  # fitted calibrations also carry their own residual error
            acc += float(self.mapping.fit_report.rms_m)
        cell = self.grid.cell_at(float(lat[0]), float(lon[0])) if self.grid else None
        return GeoLocation(
            lat=float(lat[0]), lon=float(lon[0]), accuracy_m=round(min(acc, 10_000.0), 2),
            grid_cell=cell.code if cell else None,
        )

    def to_event(
        self, update: IncidentUpdate, frame_ts: float, frame_wall: datetime, size: tuple[int, int],
        evidence: list[EvidenceRef] | None = None, model: ModelRef | None = None,
    ) -> IncidentEvent:
        """The wire event for `update`; `model` (default: `self.model`) is the model that found its subject."""
        def wall(ts: float) -> datetime:
            return frame_wall - timedelta(seconds=frame_ts - ts)

        w, h = size
        return IncidentEvent(
            event_id=uuid.uuid4(),
            incident_id=update.incident_id,
            seq=update.seq,
            type=update.type,  # type: ignore[arg-type]
            phase=update.phase,
            site_id=self.site_id,
            gateway_id=self.gateway_id,
            camera_id=self.camera_id,
            zone=update.zone,
            started_at=wall(update.started_ts),
            observed_at=wall(update.ts),
            ended_at=wall(update.ts) if update.phase == "ended" else None,
            end_reason=update.end_reason,
            dwell_s=round(update.dwell_s, 3),
            confidence=round(min(1.0, max(0.0, update.confidence)), 4),
            location=self.location(update.anchor),
            box=image_box(update.box, w, h),
            objects=[
                TrackedObject(track_id=o.track_id, class_name=o.class_name, confidence=round(o.confidence, 4),
                              role=o.role, box=image_box(o.box, w, h),
                              area_m2=None if o.area_m2 is None else round(min(o.area_m2, 10_000.0), 3))
                for o in update.objects
            ],
            model=model or self.model,
            evidence=evidence or [],
        )


def image_box(box: Box, width: int, height: int) -> ImageBox:
    x1, y1, x2, y2 = (max(0.0, float(v)) for v in box)
    x1, x2 = min(x1, width), min(x2, width)
    y1, y2 = min(y1, height), min(y2, height)
    return ImageBox(x1=round(x1, 1), y1=round(y1, 1), x2=round(max(x1, x2), 1), y2=round(max(y1, y2), 1),
                    image_width=width, image_height=height)

