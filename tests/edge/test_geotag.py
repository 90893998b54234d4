from __future__ import annotations

import math

import numpy as np
import pytest
import supervision as sv

from gridwatch.calibration.camera import PinholeCamera
from gridwatch.calibration.geo import enu_to_wgs84, wgs84_to_enu
from gridwatch.calibration.grid import GridLayer, make_regular_grid
from gridwatch.edge.config import PinholeCalibration, PointPair, PointsCalibration, ZoneConfig
from gridwatch.edge.geotag import Geotagger, build_ground_mapping, build_zones
from gridwatch.pipelines.types import IncidentUpdate
from gridwatch.wire.events import ModelRef

LAT, LON = 39.9087, 116.3975
POSE = {"hfov_deg": 70.0, "height_m": 6.0, "tilt_deg": 20.0, "heading_deg": 90.0, "lat": LAT, "lon": LON}
W, H = 640, 360


def camera() -> PinholeCamera:
    return PinholeCamera.from_hfov(W, H, POSE["hfov_deg"], POSE["height_m"], POSE["tilt_deg"], POSE["heading_deg"],
                                   LAT, LON)


def pixel_of(east: float, north: float) -> tuple[float, float]:
    uv = camera().ground_to_pixel(np.array([[east, north]]))[0]
    return float(uv[0]), float(uv[1])


@pytest.mark.parametrize("east, north", [(15.0, 0.0), (25.0, -3.0), (10.0, 2.5)])
def test_pinhole_geotag_recovers_the_ground_point(east: float, north: float) -> None:
    mapping = build_ground_mapping(PinholeCalibration(type="pinhole", **POSE), W, H)  # type: ignore[arg-type]
    grid = GridLayer.from_geojson(make_regular_grid(LAT, LON, 4, 4, 50.0))
    tagger = Geotagger("s", "gw", "cam", ModelRef(name="m", version="1", sha256="0" * 64), mapping, grid)
    loc = tagger.location(pixel_of(east, north))
    assert loc is not None
    e, n = wgs84_to_enu(loc.lat, loc.lon, LAT, LON)
    assert math.hypot(float(e) - east, float(n) - north) < 0.05
    assert 0 < loc.accuracy_m < 2.0
    cell = grid.cell_at(loc.lat, loc.lon)
    assert cell is not None and loc.grid_cell == cell.code


def test_point_pairs_calibration_matches_the_pose() -> None:
    pts = [(8.0, -4.0), (8.0, 4.0), (30.0, -6.0), (30.0, 6.0), (18.0, 0.0)]
    pairs = []
    for e, n in pts:
        lat, lon = enu_to_wgs84(e, n, LAT, LON)
        pairs.append(PointPair(pixel=pixel_of(e, n), lat=float(lat), lon=float(lon)))
    mapping = build_ground_mapping(PointsCalibration(type="points", points=pairs), W, H)
    lat, lon = mapping.pixel_to_wgs84(np.array([pixel_of(20.0, 1.0)]))
    e, n = wgs84_to_enu(float(lat[0]), float(lon[0]), LAT, LON)
    assert math.hypot(float(e) - 20.0, float(n) - 1.0) < 0.05


def test_ground_zone_projects_into_the_image() -> None:
    mapping = build_ground_mapping(PinholeCalibration(type="pinhole", **POSE), W, H)  # type: ignore[arg-type]
    corners = [(10.0, -2.0), (10.0, 2.0), (20.0, 2.0), (20.0, -2.0)]
    latlon = [tuple(float(v) for v in enu_to_wgs84(e, n, LAT, LON)) for e, n in corners]
    zone = build_zones([ZoneConfig(name="z", ground=latlon)], mapping)[0]  # type: ignore[arg-type]
    assert zone.contains(pixel_of(15.0, 0.0))
    assert not zone.contains(pixel_of(25.0, 0.0))


def test_uncalibrated_camera_gives_no_location_and_above_horizon_is_none() -> None:
    tagger = Geotagger("s", "gw", "cam", ModelRef(name="m", version="1", sha256="0" * 64))
    assert tagger.location((100.0, 300.0)) is None
    mapping = build_ground_mapping(PinholeCalibration(type="pinhole", **POSE), W, H)  # type: ignore[arg-type]
    tagger.mapping = mapping
    assert tagger.location((320.0, 1.0)) is None  # sky


def test_event_times_are_wall_clock_from_capture_timestamps() -> None:
    from datetime import datetime, timezone

    tagger = Geotagger("s", "gw", "cam", ModelRef(name="m", version="1", sha256="0" * 64))
    upd = IncidentUpdate("cam-x-illegal_parking-00001", "illegal_parking", "ended", 2, "kerb", 10.0, 70.0, 60.0,
                         0.9, (1, 2, 3, 4), (2, 4), None, end_reason="gone")
    wall = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    ev = tagger.to_event(upd, frame_ts=75.0, frame_wall=wall, size=(W, H))
    assert (wall - ev.started_at).total_seconds() == pytest.approx(65.0)
    assert (wall - ev.observed_at).total_seconds() == pytest.approx(5.0)
    assert ev.ended_at == ev.observed_at
    assert ev.end_reason == "gone"


def test_a_regions_ground_area_travels_on_the_events_objects() -> None:
    from datetime import datetime, timezone

    from gridwatch.pipelines.types import ObjectRef

    tagger = Geotagger("s", "gw", "cam", ModelRef(name="m", version="1", sha256="0" * 64))
    region = ObjectRef(7, "unknown_object", 0.8, "subject", (10, 20, 30, 40), area_m2=0.4567)
    owner = ObjectRef(3, "person", 0.9, "owner", (0, 0, 20, 60))
    upd = IncidentUpdate("cam-littering-1", "littering", "started", 0, None, 1.0, 5.0, 4.0, 0.8, (10, 20, 30, 40),
                         (20, 40), None, objects=(region, owner))
    ev = tagger.to_event(upd, frame_ts=5.0, frame_wall=datetime(2026, 1, 1, tzinfo=timezone.utc), size=(W, H))
    assert [(o.role, o.area_m2) for o in ev.objects] == [("subject", 0.457), ("owner", None)]


def test_with_ground_measures_the_width_of_the_box_bottom_on_the_ground() -> None:
    """A box whose bottom corners sit on two ground points 2.0 m apart across the view measures 2.0 m; a box
    reaching above the horizon gets no width (NaN), and an uncalibrated camera measures nothing."""
    mapping = build_ground_mapping(PinholeCalibration(type="pinhole", **POSE), W, H)  # type: ignore[arg-type]
    tagger = Geotagger("s", "gw", "cam", ModelRef(name="m", version="1", sha256="0" * 64), mapping)
    (lx, ly), (rx, ry) = pixel_of(15.0, 1.0), pixel_of(15.0, -1.0)  # heading 90: north is to the left
    y = (ly + ry) / 2
    dets = sv.Detections(xyxy=np.array([[lx, y - 40, rx, y], [100, -50, 200, 10]], np.float32),
                         data={"class_name": np.array(["car", "car"])})
    width = tagger.with_ground(dets).data["width_m"]
    assert width[0] == pytest.approx(2.0, abs=0.1)
    assert np.isnan(width[1])
    bare = Geotagger("s", "gw", "cam", ModelRef(name="m", version="1", sha256="0" * 64))
    assert "width_m" not in bare.with_ground(dets).data
