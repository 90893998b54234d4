"""ENU <-> WGS-84 on published radii and against a strict ECEF tangent plane."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridwatch.calibration.geo import enu_to_wgs84, haversine_m, wgs84_to_enu

A, F = 6378137.0, 1 / 298.257223563
E2 = F * (2 - F)


@pytest.mark.parametrize(
    ("lat0", "dlat", "dlon", "east", "north"),
    [
        # Metres per degree of latitude: 111132.954 - 559.822 cos 2p + 1.175 cos 4p (the standard series).
        (0.0, 1.0, 0.0, 0.0, 110574.3),
        (45.0, 1.0, 0.0, 0.0, 111131.78),
        (0.0, 0.0, 1.0, 111319.5, 0.0),  # one degree of longitude at the equator (published: 111.320 km)
        (60.0, 0.0, 1.0, 55800.0, 0.0),  # ... at 60 degrees (published: 55.800 km)
    ],
)
def test_published_degree_lengths(lat0: float, dlat: float, dlon: float, east: float, north: float) -> None:
    # Tiny steps scaled up: degree lengths are local quantities at lat0.
    e, n = wgs84_to_enu(lat0 + dlat * 1e-3, 120.0 + dlon * 1e-3, lat0, 120.0)
    assert e * 1e3 == pytest.approx(east, abs=0.5)
    assert n * 1e3 == pytest.approx(north, abs=0.5)


def _ecef(lat: float, lon: float) -> np.ndarray:
    p, lam = math.radians(lat), math.radians(lon)
    n = A / math.sqrt(1 - E2 * math.sin(p) ** 2)
    return np.array([n * math.cos(p) * math.cos(lam), n * math.cos(p) * math.sin(lam), n * (1 - E2) * math.sin(p)])


def _strict_enu(lat: float, lon: float, lat0: float, lon0: float) -> tuple[float, float]:
    d = _ecef(lat, lon) - _ecef(lat0, lon0)
    p, lam = math.radians(lat0), math.radians(lon0)
    e = -math.sin(lam) * d[0] + math.cos(lam) * d[1]
    n = -math.sin(p) * math.cos(lam) * d[0] - math.sin(p) * math.sin(lam) * d[1] + math.cos(p) * d[2]
    return e, n


@pytest.mark.parametrize(("east", "north", "tol"), [(30.0, 40.0, 0.002), (100.0, -80.0, 0.005), (-700.0, 700.0, 0.12)])
def test_close_to_strict_tangent_plane(east: float, north: float, tol: float) -> None:
    """Within a camera's range the local plane agrees with ECEF-ENU to millimetres (decimetre at 1 km)."""
    lat0, lon0 = 31.2304, 121.4737
    lat, lon = enu_to_wgs84(east, north, lat0, lon0)
    e, n = _strict_enu(lat, lon, lat0, lon0)
    assert math.hypot(e - east, n - north) < tol


def test_distances_match_great_circle_to_sphere_precision() -> None:
    lat, lon = enu_to_wgs84(300.0, 400.0, 31.0, 121.0)
    assert haversine_m(31.0, 121.0, lat, lon) == pytest.approx(500.0, rel=4e-3)


def test_round_trip_arrays_and_scalars() -> None:
    rng = np.random.default_rng(0)
    e, n = rng.uniform(-1000, 1000, 50), rng.uniform(-1000, 1000, 50)
    lat, lon = enu_to_wgs84(e, n, 39.9, 116.4)
    assert isinstance(lat, np.ndarray) and lat.shape == (50,)
    e2, n2 = wgs84_to_enu(lat, lon, 39.9, 116.4)
    np.testing.assert_allclose(e2, e, atol=1e-6)
    np.testing.assert_allclose(n2, n, atol=1e-6)
    s_lat, s_lon = enu_to_wgs84(10.0, 20.0, 39.9, 116.4)
    assert isinstance(s_lat, float) and isinstance(s_lon, float)
    assert wgs84_to_enu(s_lat, s_lon, 39.9, 116.4) == pytest.approx((10.0, 20.0), abs=1e-6)


def test_origin_maps_to_zero_and_antimeridian_wraps() -> None:
    assert wgs84_to_enu(31.0, 121.0, 31.0, 121.0) == (0.0, 0.0)
    e, _ = wgs84_to_enu(0.0, -179.9999, 0.0, 179.9999)
    assert e == pytest.approx(22.26, abs=0.01)
    _, lon = enu_to_wgs84(22.26, 0.0, 0.0, 179.9999)
    assert lon == pytest.approx(-179.9999, abs=1e-6)
