"""WGS-84 <-> GCJ-02 <-> BD-09 against published point pairs, inverse accuracy, identity outside China."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridwatch.calibration.errors import CalibrationInputError, ConvergenceError
from gridwatch.calibration.gcj02 import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)


def _dist_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Small-distance planar approximation; plenty for offsets of a few hundred metres."""
    dy = (lat2 - lat1) * 111_320.0
    dx = (lon2 - lon1) * 111_320.0 * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, dy)


# (wgs_lat, wgs_lon, gcj_lat, gcj_lon): the test table of googollee/eviltransform (Go/JS/PHP/Python ports).
EVILTRANSFORM = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
]


@pytest.mark.parametrize(("w_lat", "w_lon", "g_lat", "g_lon"), EVILTRANSFORM)
def test_wgs84_to_gcj02_matches_published_pairs(w_lat: float, w_lon: float, g_lat: float, g_lon: float) -> None:
    lat, lon = wgs84_to_gcj02(w_lat, w_lon)
    assert lat == pytest.approx(g_lat, abs=1e-9)
    assert lon == pytest.approx(g_lon, abs=1e-9)


@pytest.mark.parametrize(("w_lat", "w_lon", "g_lat", "g_lon"), EVILTRANSFORM)
def test_gcj02_to_wgs84_inverts_published_pairs(w_lat: float, w_lon: float, g_lat: float, g_lon: float) -> None:
    lat, lon = gcj02_to_wgs84(g_lat, g_lon)
    assert _dist_m(lat, lon, w_lat, w_lon) < 0.01


def test_gcj02_to_bd09_matches_published_pair() -> None:
    # GCJ-02 -> BD-09 pair from a published CLI test (geotool), Jiaxing.
    lat, lon = gcj02_to_bd09(30.608604331756705, 121.09626935575027)
    assert lat == pytest.approx(30.61484572185035, abs=1e-9)
    assert lon == pytest.approx(121.10271732371203, abs=1e-9)


def test_tiananmen_offset_is_a_few_hundred_metres() -> None:
    lat, lon = wgs84_to_gcj02(39.9087, 116.3975)
    assert 100.0 < _dist_m(39.9087, 116.3975, lat, lon) < 700.0
    assert lat > 39.9087 and lon > 116.3975  # in Beijing GCJ-02 is north-east of WGS-84


def test_inverse_round_trip_is_sub_half_metre_across_china() -> None:
    lat, lon = np.meshgrid(np.linspace(18.5, 53.0, 25), np.linspace(74.0, 134.5, 25))
    g_lat, g_lon = wgs84_to_gcj02(lat, lon)
    w_lat, w_lon = gcj02_to_wgs84(g_lat, g_lon)
    err_m = np.hypot((w_lat - lat) * 111_320.0, (w_lon - lon) * 111_320.0 * np.cos(np.radians(lat)))
    assert err_m.max() < 0.5
    assert err_m.max() < 0.02  # in fact centimetres with the default tolerance


def test_bd09_round_trips() -> None:
    lat, lon = 39.9087, 116.3975
    b_lat, b_lon = wgs84_to_bd09(lat, lon)
    assert 300.0 < _dist_m(lat, lon, b_lat, b_lon) < 1500.0
    assert _dist_m(*bd09_to_wgs84(b_lat, b_lon), lat, lon) < 0.5
    g_lat, g_lon = wgs84_to_gcj02(lat, lon)
    assert _dist_m(*bd09_to_gcj02(*gcj02_to_bd09(g_lat, g_lon)), g_lat, g_lon) < 0.5


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(48.8584, 2.2945), (40.6892, -74.0445), (-33.8568, 151.2153), (0.0, 0.0), (60.0, 100.0)],
    ids=["paris", "new-york", "sydney", "null-island", "north-of-box"],
)
def test_identity_outside_china(lat: float, lon: float) -> None:
    assert out_of_china(lat, lon)
    assert wgs84_to_gcj02(lat, lon) == (lat, lon)
    assert gcj02_to_wgs84(lat, lon) == (lat, lon)


def test_scalar_in_scalar_out_array_in_array_out() -> None:
    lat, lon = wgs84_to_gcj02(39.9087, 116.3975)
    assert isinstance(lat, float) and isinstance(lon, float)
    lats, lons = wgs84_to_gcj02(np.array([[39.9087, 48.8584]]), np.array([[116.3975, 2.2945]]))
    assert isinstance(lats, np.ndarray) and lats.shape == (1, 2)
    assert lats[0, 0] == pytest.approx(lat) and lons[0, 1] == 2.2945
    assert out_of_china(np.array([39.9, 48.9]), np.array([116.4, 2.3])).tolist() == [False, True]


def test_nan_passes_through() -> None:
    lats, _ = gcj02_to_wgs84(np.array([np.nan, 39.91]), np.array([116.4, 116.4]))
    assert np.isnan(lats[0]) and np.isfinite(lats[1])


def test_point_without_preimage_at_box_edge_raises() -> None:
    # Just inside the western edge of the box the offset jumps: nothing maps onto this GCJ-02 point.
    with pytest.raises(ConvergenceError, match="pre-image"):
        gcj02_to_wgs84(40.0, 72.0045)
    with pytest.raises(ConvergenceError, match=r"1 point\(s\)"):
        gcj02_to_wgs84(np.array([39.9, 40.0]), np.array([116.4, 72.0045]))


def test_shape_mismatch_rejected() -> None:
    with pytest.raises(CalibrationInputError, match="same shape"):
        wgs84_to_gcj02(np.zeros(3), np.zeros(2))
