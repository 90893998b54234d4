"""GroundMapping: round trips, agreement with the camera model, point-pair fits and their failure modes."""

from __future__ import annotations

import numpy as np
import pytest

from gridwatch.calibration.camera import PinholeCamera
from gridwatch.calibration.errors import CalibrationError, CalibrationInputError, DegenerateCalibrationError
from gridwatch.calibration.geo import enu_to_wgs84, wgs84_to_enu
from gridwatch.calibration.ground import GroundMapping

LAT0, LON0 = 39.9219, 116.4436


@pytest.fixture(scope="module")
def cam() -> PinholeCamera:
    return PinholeCamera.from_hfov(1280, 720, 70.0, 6.0, 20.0, 30.0, LAT0, LON0)


@pytest.fixture(scope="module")
def gm(cam: PinholeCamera) -> GroundMapping:
    return GroundMapping.from_camera(cam)


def _ground_pixels(cam: PinholeCamera) -> np.ndarray:
    """A lattice of pixels well below the horizon."""
    us = np.linspace(0, cam.width - 1, 9)
    vs = np.linspace(cam.horizon_v() + 40, cam.height - 1, 7)
    return np.array([[u, v] for u in us for v in vs])


def _pairs(cam: PinholeCamera, en: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact pixel <-> lat/lon pairs for ground points `en` seen by `cam`."""
    uv = cam.ground_to_pixel(en)
    lat, lon = enu_to_wgs84(en[:, 0], en[:, 1], cam.lat, cam.lon)
    return uv, lat, lon


GOOD_EN = np.array([[2.5, 8.5], [7.5, 6.0], [1.0, 12.0], [9.0, 9.5], [5.0, 18.0], [14.0, 12.0], [8.0, 28.0]])


# ------------------------------------------------------------------------------------ from_camera
def test_from_camera_agrees_with_camera_model(cam: PinholeCamera, gm: GroundMapping) -> None:
    uv = np.vstack([_ground_pixels(cam), [[640.0, 5.0], [10.0, 10.0]]])  # last two: sky
    np.testing.assert_allclose(gm.pixel_to_enu(uv), cam.pixel_to_ground(uv), rtol=1e-9, atol=1e-9)


def test_from_homography_fixes_the_sign(cam: PinholeCamera, gm: GroundMapping) -> None:
    h = cam.ground_homography()  # normalised to H[2,2] = 1: pixel (0, 0) is sky here, so the sign is flipped
    assert not GroundMapping(h, LAT0, LON0).is_ground([[640.0, 700.0]])[0]  # why the raw constructor is unsafe
    fixed = GroundMapping.from_homography(h, LAT0, LON0, ground_pixel=(640.0, 719.0))
    np.testing.assert_allclose(fixed.H, gm.H, atol=1e-12)
    with pytest.raises(DegenerateCalibrationError, match="horizon"):
        horizon_at_v5 = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, -5.0]])
        GroundMapping.from_homography(horizon_at_v5, LAT0, LON0, ground_pixel=(3.0, 5.0))


def test_pixel_enu_round_trip(cam: PinholeCamera, gm: GroundMapping) -> None:
    uv = _ground_pixels(cam)
    np.testing.assert_allclose(gm.enu_to_pixel(gm.pixel_to_enu(uv)), uv, atol=1e-6)


def test_pixel_wgs84_round_trip(cam: PinholeCamera, gm: GroundMapping) -> None:
    uv = _ground_pixels(cam)
    lat, lon = gm.pixel_to_wgs84(uv)
    assert lat.shape == lon.shape == (len(uv),)
    np.testing.assert_allclose(gm.wgs84_to_pixel(lat, lon), uv, atol=1e-5)


def test_origin_pixel_maps_to_origin_latlon(cam: PinholeCamera, gm: GroundMapping) -> None:
    uv = cam.ground_to_pixel(np.array([[3.0, 10.0]]))
    lat, lon = gm.pixel_to_wgs84(uv)
    e, n = wgs84_to_enu(lat, lon, LAT0, LON0)
    np.testing.assert_allclose([e[0], n[0]], [3.0, 10.0], atol=1e-6)


def test_single_point_is_accepted_as_one_row(gm: GroundMapping) -> None:
    assert gm.pixel_to_enu([640.0, 600.0]).shape == (1, 2)


def test_sky_pixels_are_nan_and_not_ground(cam: PinholeCamera, gm: GroundMapping) -> None:
    hv = cam.horizon_v()
    uv = np.array([[cam.cx, hv - 5.0], [cam.cx, hv + 5.0]])
    assert gm.is_ground(uv).tolist() == [False, True]
    en = gm.pixel_to_enu(uv)
    assert np.all(np.isnan(en[0])) and np.all(np.isfinite(en[1]))


def test_ground_behind_camera_does_not_project(gm: GroundMapping, cam: PinholeCamera) -> None:
    # heading 30 deg: a point 10 m in the opposite direction is behind the camera
    behind = -10.0 * np.array([[np.sin(np.radians(30.0)), np.cos(np.radians(30.0))]])
    assert np.all(np.isnan(gm.enu_to_pixel(behind)))


def test_accuracy_grows_toward_horizon(cam: PinholeCamera, gm: GroundMapping) -> None:
    vs = np.linspace(cam.height - 1, cam.horizon_v() + 5, 12)
    acc = gm.accuracy_m(np.column_stack([np.full_like(vs, cam.cx), vs]))
    assert np.all(np.isfinite(acc)) and np.all(np.diff(acc) > 0)
    assert acc[0] < 0.1  # a few cm at the bottom of a 720p frame from 6 m up
    assert acc[-1] > 10 * acc[0]


def test_accuracy_is_inf_at_and_above_horizon(cam: PinholeCamera, gm: GroundMapping) -> None:
    hv = cam.horizon_v()
    acc = gm.accuracy_m([[cam.cx, hv - 20.0], [cam.cx, hv + 1.0]])
    assert np.all(np.isinf(acc))


def test_accuracy_scales_with_pixel_error(cam: PinholeCamera) -> None:
    uv = np.array([[640.0, 500.0]])
    a1 = GroundMapping.from_camera(cam, pixel_error_px=1.0).accuracy_m(uv)[0]
    a4 = GroundMapping.from_camera(cam, pixel_error_px=4.0).accuracy_m(uv)[0]
    assert a4 == pytest.approx(4 * a1, rel=0.05)


def test_horizon_line_matches_camera(cam: PinholeCamera, gm: GroundMapping) -> None:
    a, b, c = gm.horizon_line()
    assert -(a * cam.cx + c) / b == pytest.approx(cam.horizon_v(), abs=1e-6)


def test_mapping_is_immutable_and_copies_input(gm: GroundMapping) -> None:
    h = np.eye(3)
    h[2, 1] = 0.001
    m = GroundMapping(h, LAT0, LON0)
    before = m.H.copy()
    h[0, 0] = 99.0  # the caller keeps using its array
    np.testing.assert_array_equal(m.H, before)
    assert not np.shares_memory(m.H, h)
    assert not m.H.flags.writeable and not m.H_inv.flags.writeable
    with pytest.raises(AttributeError):
        m.origin_lat = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("h", "error", "match"),
    [
        (np.eye(2), CalibrationInputError, "3x3"),
        (np.full((3, 3), np.nan), CalibrationInputError, "finite"),
        (np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]), DegenerateCalibrationError, "singular"),
    ],
)
def test_bad_homography_rejected(h: np.ndarray, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        GroundMapping(h, LAT0, LON0)


def test_bad_origin_rejected() -> None:
    with pytest.raises(CalibrationInputError, match="origin_lat"):
        GroundMapping(np.eye(3), 95.0, LON0)


# -------------------------------------------------------------------------------- from_point_pairs
def test_point_pairs_recover_known_homography(cam: PinholeCamera, gm: GroundMapping) -> None:
    uv, lat, lon = _pairs(cam, GOOD_EN)
    fit = GroundMapping.from_point_pairs(uv, lat, lon, origin=(LAT0, LON0))
    np.testing.assert_allclose(fit.H, gm.H, atol=1e-7)  # same scale *and* sign after normalisation
    assert fit.fit_report is not None
    assert fit.fit_report.rms_m < 1e-6 and fit.fit_report.rms_px < 1e-4
    assert fit.fit_report.n_inliers == len(GOOD_EN) and fit.fit_report.redundancy == len(GOOD_EN) - 4


def test_point_pairs_default_origin_is_centroid(cam: PinholeCamera, gm: GroundMapping) -> None:
    uv, lat, lon = _pairs(cam, GOOD_EN)
    fit = GroundMapping.from_point_pairs(uv, lat, lon)
    assert (fit.origin_lat, fit.origin_lon) == pytest.approx((np.mean(lat), np.mean(lon)))
    probe = _ground_pixels(cam)
    lat_fit, lon_fit = fit.pixel_to_wgs84(probe)
    lat_cam, lon_cam = gm.pixel_to_wgs84(probe)
    e, n = wgs84_to_enu(lat_fit, lon_fit, LAT0, LON0)
    e0, n0 = wgs84_to_enu(lat_cam, lon_cam, LAT0, LON0)
    assert np.max(np.hypot(e - e0, n - n0)) < 1e-3


def test_exactly_four_points_fit_with_zero_redundancy(cam: PinholeCamera) -> None:
    uv, lat, lon = _pairs(cam, GOOD_EN[[0, 1, 4, 5]])
    fit = GroundMapping.from_point_pairs(uv, lat, lon)
    assert fit.fit_report is not None and fit.fit_report.redundancy == 0


def test_noisy_pairs_report_realistic_rms(cam: PinholeCamera) -> None:
    rng = np.random.default_rng(1)
    uv, lat, lon = _pairs(cam, GOOD_EN)
    fit = GroundMapping.from_point_pairs(uv + rng.normal(0, 1.0, uv.shape), lat, lon)
    assert fit.fit_report is not None
    assert 0.05 < fit.fit_report.rms_px < 3.0
    assert 0.001 < fit.fit_report.rms_m < 0.5


def test_ransac_drops_a_mislabelled_pair(cam: PinholeCamera) -> None:
    en = np.vstack([GOOD_EN, [[3.0, 22.0], [12.0, 20.0], [16.0, 30.0]]])
    uv, lat, lon = _pairs(cam, en)
    uv[3] += [60.0, -40.0]  # clicked the wrong lamp post
    fit = GroundMapping.from_point_pairs(uv, lat, lon, ransac_px=5.0)
    rep = fit.fit_report
    assert rep is not None
    assert rep.inliers[3] is False and rep.n_inliers == len(en) - 1
    assert rep.rms_px < 1e-3
    assert rep.residuals_px[3] > 30.0


def test_without_ransac_an_outlier_shows_in_rms(cam: PinholeCamera) -> None:
    uv, lat, lon = _pairs(cam, GOOD_EN)
    uv[3] += [60.0, -40.0]
    rep = GroundMapping.from_point_pairs(uv, lat, lon).fit_report
    assert rep is not None and rep.rms_px > 5.0


def _collinear_pixels() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    uv = np.array([[100.0, 500.0], [300.0, 520.0], [500.0, 540.0], [700.0, 560.0], [900.0, 580.0]])
    lat = LAT0 + np.array([0.0, 1e-4, 0.0, 1e-4, 2e-4])
    lon = LON0 + np.array([0.0, 0.0, 1e-4, 1e-4, 0.0])
    return uv, lat, lon


def _collinear_ground() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    uv = np.array([[100.0, 500.0], [900.0, 520.0], [500.0, 300.0], [700.0, 650.0], [200.0, 700.0]])
    lat = LAT0 + np.arange(5) * 1e-4
    lon = LON0 + np.arange(5) * 2e-4
    return uv, lat, lon


def _all_but_one_collinear() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    uv = np.array([[100.0, 500.0], [300.0, 500.0], [500.0, 500.0], [700.0, 500.0], [400.0, 700.0]])
    lat = LAT0 + np.array([0.0, 0.0, 0.0, 0.0, -2e-4])
    lon = LON0 + np.array([0.0, 1e-4, 2e-4, 3e-4, 1.5e-4])
    return uv, lat, lon


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: (np.zeros((3, 2)), np.full(3, LAT0), np.full(3, LON0)), "at least 4"),
        (_collinear_pixels, "pixel points are collinear"),
        (_collinear_ground, "ground points are collinear"),
        (_all_but_one_collinear, "general position"),
    ],
    ids=["three-pairs", "collinear-pixels", "collinear-ground", "all-but-one-collinear"],
)
def test_degenerate_pairs_rejected_with_clear_message(make, match: str) -> None:  # type: ignore[no-untyped-def]
    uv, lat, lon = make()
    with pytest.raises(DegenerateCalibrationError, match=match):
        GroundMapping.from_point_pairs(uv, lat, lon)


def test_pairs_straddling_the_horizon_rejected(cam: PinholeCamera) -> None:
    """Pairs consistent with the raw homography but on both sides of its horizon cannot all be ground."""
    h = cam.ground_homography()
    uv = np.array([[200.0, 600.0], [1000.0, 600.0], [640.0, 400.0], [300.0, 10.0], [900.0, 5.0]])
    hom = np.column_stack([uv, np.ones(len(uv))]) @ h.T
    en = hom[:, :2] / hom[:, 2:]
    lat, lon = enu_to_wgs84(en[:, 0], en[:, 1], LAT0, LON0)
    with pytest.raises(DegenerateCalibrationError, match="horizon"):
        GroundMapping.from_point_pairs(uv, lat, lon)


@pytest.mark.parametrize(
    ("uv", "lat", "lon", "match"),
    [
        (np.zeros((5, 3)), np.zeros(5), np.zeros(5), "shape"),
        (np.zeros((5, 2)), np.zeros(4), np.zeros(5), "same length"),
        (np.array([[np.nan, 0.0]] * 5), np.zeros(5), np.zeros(5), "NaN"),
    ],
)
def test_malformed_pairs_rejected(uv: np.ndarray, lat: np.ndarray, lon: np.ndarray, match: str) -> None:
    with pytest.raises(CalibrationInputError, match=match):
        GroundMapping.from_point_pairs(uv, lat, lon)


def test_all_errors_share_one_base() -> None:
    assert issubclass(DegenerateCalibrationError, CalibrationError)
    assert issubclass(DegenerateCalibrationError, ValueError)
