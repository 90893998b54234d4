"""Local tangent plane (east, north metres) <-> WGS-84 latitude/longitude.

A camera sees at most a few hundred metres, so a local plane around the camera's ground point is
enough: north uses the ellipsoid's meridional radius of curvature M, east the prime-vertical radius N
times cos(latitude), both evaluated at the mid-latitude of the two points. That keeps distances within
a centimetre of the geodesic inside ~1 km, without a projection library on the edge box.

Both functions accept floats or numpy arrays (broadcast together) and return the same kind.
"""

from __future__ import annotations

import math
from typing import TypeVar, overload

import numpy as np
from numpy.typing import NDArray

#: WGS-84 semi-major axis (m) and flattening.
WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)

FloatArray = NDArray[np.float64]
T = TypeVar("T", float, FloatArray)

_INVERSE_ITERATIONS = 4


def meridional_radius(lat_deg: T) -> T:
    """Radius of curvature in the meridian (north-south), metres."""
    s = np.sin(np.radians(lat_deg))
    return WGS84_A * (1.0 - WGS84_E2) / (1.0 - WGS84_E2 * s * s) ** 1.5  # type: ignore[no-any-return]


def prime_vertical_radius(lat_deg: T) -> T:
    """Radius of curvature in the prime vertical (east-west), metres."""
    s = np.sin(np.radians(lat_deg))
    return WGS84_A / np.sqrt(1.0 - WGS84_E2 * s * s)  # type: ignore[no-any-return]


def _scales(lat_mid_deg: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Metres per radian of latitude and of longitude at a latitude."""
    m = meridional_radius(lat_mid_deg)
    n = prime_vertical_radius(lat_mid_deg) * np.cos(np.radians(lat_mid_deg))
    return m, n


def _out(value: FloatArray, like_scalar: bool) -> float | FloatArray:
    return float(value) if like_scalar else value


@overload
def wgs84_to_enu(lat: float, lon: float, lat0: float, lon0: float) -> tuple[float, float]: ...
@overload
def wgs84_to_enu(lat: FloatArray, lon: FloatArray, lat0: float, lon0: float) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_enu(lat: T, lon: T, lat0: float, lon0: float) -> tuple[T, T]:  # type: ignore[misc]
    """Degrees -> (east, north) metres relative to (lat0, lon0)."""
    scalar = np.ndim(lat) == 0 and np.ndim(lon) == 0
    la = np.asarray(lat, dtype=np.float64)
    lo = np.asarray(lon, dtype=np.float64)
    dlon = (lo - lon0 + 180.0) % 360.0 - 180.0  # wrap across the antimeridian
    m, n = _scales((la + lat0) / 2.0)
    north = np.radians(la - lat0) * m
    east = np.radians(dlon) * n
    return _out(east, scalar), _out(north, scalar)  # type: ignore[return-value]


@overload
def enu_to_wgs84(east: float, north: float, lat0: float, lon0: float) -> tuple[float, float]: ...
@overload
def enu_to_wgs84(east: FloatArray, north: FloatArray, lat0: float, lon0: float) -> tuple[FloatArray, FloatArray]: ...
def enu_to_wgs84(east: T, north: T, lat0: float, lon0: float) -> tuple[T, T]:  # type: ignore[misc]
    """(east, north) metres relative to (lat0, lon0) -> (lat, lon) degrees; exact inverse of wgs84_to_enu.

    The scales depend on the unknown mid-latitude, so a few fixed-point iterations converge it
    (each one gains ~4 orders of magnitude at 1 km).
    """
    scalar = np.ndim(east) == 0 and np.ndim(north) == 0
    e = np.asarray(east, dtype=np.float64)
    n_ = np.asarray(north, dtype=np.float64)
    lat = np.full(np.broadcast(e, n_).shape, float(lat0))
    for _ in range(_INVERSE_ITERATIONS):
        m, _n = _scales((lat + lat0) / 2.0)
        lat = lat0 + np.degrees(n_ / m)
    m, n_lon = _scales((lat + lat0) / 2.0)
    lon = lon0 + np.degrees(e / n_lon)
    lon = (lon + 180.0) % 360.0 - 180.0
    return _out(lat, scalar), _out(lon, scalar)  # type: ignore[return-value]


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance on the mean sphere, for sanity checks and logs (not for geometry)."""
    r = 6371008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))
