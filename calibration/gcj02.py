"""WGS-84 <-> GCJ-02 <-> BD-09, for showing stored positions on Chinese web maps.

gridwatch stores WGS-84 (see DOMAIN.md, Coordinates). Public Chinese web maps (Amap/Gaode, Tencent, Google
China) draw in GCJ-02, an obfuscated datum offset by ~100-700 m; Baidu adds a further offset (BD-09). A
point stored in WGS-84 and drawn on such a map without conversion lands in the wrong street, and a point
clicked on such a map and stored without conversion lands in the wrong grid cell. So: convert at the
display/entry boundary only.

The forward formula is the public, widely re-implemented one (Krasovsky 1940 ellipsoid, a = 6378245.0,
ee = 0.00669342162296594323). It has no closed-form inverse; `gcj02_to_wgs84` iterates the forward formula
(fixed point), which is sub-centimetre after a few iterations. Outside China (a bounding box, as in every
re-implementation) the offset is the identity.

Every function takes floats (returns floats) or array-likes of equal shape (returns float64 arrays).
"""

from __future__ import annotations

import math
from typing import overload

import numpy as np
import numpy.typing as npt

from gridwatch.calibration.errors import CalibrationInputError, ConvergenceError

FloatArray = npt.NDArray[np.float64]

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as used by the published formula
_EE = 0.00669342162296594323  # Krasovsky first eccentricity squared
_X_PI = math.pi * 3000.0 / 180.0  # BD-09 rotation constant
_M_PER_DEG = 111_320.0  # metres per degree of latitude, close enough for a convergence tolerance

# The bounding box used by eviltransform and its ports; points outside get no offset.
_CHINA_LON = (72.004, 137.8347)
_CHINA_LAT = (0.8293, 55.8271)


def _arrays(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    la = np.asarray(lat, dtype=np.float64)
    lo = np.asarray(lon, dtype=np.float64)
    if la.shape != lo.shape:
        raise CalibrationInputError(f"lat and lon must have the same shape, got {la.shape} and {lo.shape}")
    return la, lo


def _is_scalar(lat: npt.ArrayLike, lon: npt.ArrayLike) -> bool:
    return np.ndim(lat) == 0 and np.ndim(lon) == 0


def _out_of_china(la: FloatArray, lo: FloatArray) -> npt.NDArray[np.bool_]:
    inside = (lo >= _CHINA_LON[0]) & (lo <= _CHINA_LON[1]) & (la >= _CHINA_LAT[0]) & (la <= _CHINA_LAT[1])
    return ~inside


@overload
def out_of_china(lat: float, lon: float) -> bool: ...
@overload
def out_of_china(lat: npt.ArrayLike, lon: npt.ArrayLike) -> npt.NDArray[np.bool_]: ...
def out_of_china(lat: npt.ArrayLike, lon: npt.ArrayLike) -> bool | npt.NDArray[np.bool_]:
    """True where the GCJ-02 offset does not apply (outside the China bounding box)."""
    la, lo = _arrays(lat, lon)
    out = _out_of_china(la, lo)
    return bool(out) if _is_scalar(lat, lon) else out


def _transform_lat(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def _gcj_offset(la: FloatArray, lo: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The (dlat, dlon) in degrees that GCJ-02 adds to a WGS-84 point (zero outside China)."""
    x, y = lo - 105.0, la - 35.0
    rad = np.radians(la)
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = _transform_lat(x, y) * 180.0 / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = _transform_lon(x, y) * 180.0 / (_A / sqrt_magic * np.cos(rad) * np.pi)
    outside = _out_of_china(la, lo)
    return np.where(outside, 0.0, dlat), np.where(outside, 0.0, dlon)


def _wgs_to_gcj(la: FloatArray, lo: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlat, dlon = _gcj_offset(la, lo)
    return la + dlat, lo + dlon


def _pack(
    lat_in: npt.ArrayLike, lon_in: npt.ArrayLike, la: FloatArray, lo: FloatArray
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    if _is_scalar(lat_in, lon_in):
        return float(la), float(lo)
    return la, lo


@overload
def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_gcj02(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """WGS-84 -> GCJ-02 (the public forward formula; identity outside China)."""
    la, lo = _arrays(lat, lon)
    return _pack(lat, lon, *_wgs_to_gcj(la, lo))


@overload
def gcj02_to_wgs84(lat: float, lon: float, tol_m: float = ..., max_iter: int = ...) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(
    lat: npt.ArrayLike, lon: npt.ArrayLike, tol_m: float = ..., max_iter: int = ...
) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_wgs84(
    lat: npt.ArrayLike, lon: npt.ArrayLike, tol_m: float = 0.01, max_iter: int = 30
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """GCJ-02 -> WGS-84 by fixed-point iteration of the forward formula.

    `tol_m` is the largest allowed forward-mapping misfit in metres: the result maps back onto the input
    within `tol_m`. The offset changes slowly in space (its gradient is ~1e-5), so each iteration shrinks the
    error by orders of magnitude; the default 1 cm is reached in 2-3 iterations. Raises `ConvergenceError`
    if `max_iter` is not enough: that only happens within a few hundred metres of the China bounding box
    (outside China proper), where the offset jumps and some GCJ-02 points have no WGS-84 pre-image.
    Non-finite inputs pass through unchanged.
    """
    g_lat, g_lon = _arrays(lat, lon)
    w_lat, w_lon = g_lat.copy(), g_lon.copy()
    finite = np.isfinite(g_lat) & np.isfinite(g_lon)
    bad = finite
    for _ in range(max_iter):
        f_lat, f_lon = _wgs_to_gcj(w_lat, w_lon)
        err_lat, err_lon = f_lat - g_lat, f_lon - g_lon
        err_m = np.hypot(err_lat, err_lon * np.cos(np.radians(g_lat))) * _M_PER_DEG
        bad = finite & (err_m > tol_m)
        if not np.any(bad):
            return _pack(lat, lon, w_lat, w_lon)
        w_lat, w_lon = w_lat - err_lat, w_lon - err_lon
    k = int(np.flatnonzero(bad.ravel())[0])
    where = f"({g_lat.ravel()[k]:.6f}, {g_lon.ravel()[k]:.6f})"
    raise ConvergenceError(
        f"GCJ-02 -> WGS-84 did not reach {tol_m} m in {max_iter} iterations for {int(bad.sum())} point(s), "
        f"e.g. {where}: at the edge of the China box, where the offset jumps, a GCJ-02 point may have no "
        "WGS-84 pre-image"
    )


@overload
def gcj02_to_bd09(lat: float, lon: float) -> tuple[float, float]: ...
@overload
def gcj02_to_bd09(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_bd09(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """GCJ-02 -> BD-09 (Baidu maps). Applied everywhere, as Baidu does; it is not limited to China."""
    la, lo = _arrays(lat, lon)
    z = np.hypot(lo, la) + 0.00002 * np.sin(la * _X_PI)
    theta = np.arctan2(la, lo) + 0.000003 * np.cos(lo * _X_PI)
    return _pack(lat, lon, z * np.sin(theta) + 0.006, z * np.cos(theta) + 0.0065)


@overload
def bd09_to_gcj02(lat: float, lon: float) -> tuple[float, float]: ...
@overload
def bd09_to_gcj02(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_gcj02(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """BD-09 -> GCJ-02 (the published approximate inverse; round trip error is a few centimetres)."""
    la, lo = _arrays(lat, lon)
    x, y = lo - 0.0065, la - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return _pack(lat, lon, z * np.sin(theta), z * np.cos(theta))


@overload
def wgs84_to_bd09(lat: float, lon: float) -> tuple[float, float]: ...
@overload
def wgs84_to_bd09(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_bd09(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """WGS-84 -> BD-09 via GCJ-02."""
    g_lat, g_lon = wgs84_to_gcj02(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    b_lat, b_lon = gcj02_to_bd09(g_lat, g_lon)
    return _pack(lat, lon, b_lat, b_lon)


@overload
def bd09_to_wgs84(lat: float, lon: float, tol_m: float = ...) -> tuple[float, float]: ...
@overload
def bd09_to_wgs84(lat: npt.ArrayLike, lon: npt.ArrayLike, tol_m: float = ...) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_wgs84(
    lat: npt.ArrayLike, lon: npt.ArrayLike, tol_m: float = 0.01
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """BD-09 -> WGS-84 via GCJ-02 (iterative inverse for the GCJ-02 step)."""
    g_lat, g_lon = bd09_to_gcj02(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    w_lat, w_lon = gcj02_to_wgs84(g_lat, g_lon, tol_m=tol_m)
    return _pack(lat, lon, w_lat, w_lon)
