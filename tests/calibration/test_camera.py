"""PinholeCamera: both directions on known point pairs, and against each other."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridwatch.calibration.camera import PinholeCamera


def cam(tilt: float = 30.0, heading: float = 0.0, height: float = 6.0, hfov: float = 60.0) -> PinholeCamera:
    return PinholeCamera.from_hfov(640, 360, hfov, height, tilt, heading, 31.0, 121.0)


@pytest.mark.parametrize(
    ("tilt", "heading", "height"),
    [(30.0, 0.0, 6.0), (45.0, 90.0, 10.0), (15.0, 225.0, 4.0), (60.0, 330.0, 8.0)],
)
def test_principal_point_hits_ground_at_height_over_tan_tilt_along_heading(
    tilt: float, heading: float, height: float
) -> None:
    c = cam(tilt, heading, height)
    d = height / math.tan(math.radians(tilt))
    expected = [d * math.sin(math.radians(heading)), d * math.cos(math.radians(heading))]
    np.testing.assert_allclose(c.pixel_to_ground(np.array([[c.cx, c.cy]]))[0], expected, atol=1e-9)
    np.testing.assert_allclose(c.ground_to_pixel(np.array([expected]))[0], [c.cx, c.cy], atol=1e-9)


@pytest.mark.parametrize(("depression_deg", "side_m"), [(30.0, 0.0), (40.0, 2.0), (20.0, -3.0)])
def test_known_pairs_heading_north(depression_deg: float, side_m: float) -> None:
    """A ground point seen at depression angle a lies at row cy + fy*tan(a - tilt) (on the centre column)."""
    c = cam(tilt=30.0, heading=0.0, height=6.0)
    north = 6.0 / math.tan(math.radians(depression_deg))
    uv = c.ground_to_pixel(np.array([[side_m, north]]))[0]
    if side_m == 0.0:
        assert uv[0] == pytest.approx(c.cx)
        assert uv[1] == pytest.approx(c.cy + c.fy * math.tan(math.radians(depression_deg - 30.0)))
    else:  # east is to the right when looking north
        assert (uv[0] > c.cx) == (side_m > 0)


def test_round_trip_grid_of_pixels_below_horizon() -> None:
    c = cam(tilt=25.0, heading=137.0)
    us, vs = np.meshgrid(np.linspace(0, 639, 9), np.linspace(c.horizon_v() + 5, 359, 7))
    uv = np.stack([us.ravel(), vs.ravel()], axis=1)
    en = c.pixel_to_ground(uv)
    assert not np.isnan(en).any()
    np.testing.assert_allclose(c.ground_to_pixel(en), uv, atol=1e-6)


def test_project_agrees_with_homography_and_flags_points_behind() -> None:
    c = cam(tilt=20.0, heading=45.0)
    pts = np.array([[3.0, 12.0, 0.0], [10.0, 10.0, 0.0], [-10.0, -10.0, 0.0], [5.0, 5.0, 1.7]])
    uv, front = c.project(pts)
    assert front.tolist() == [True, True, False, True]
    h = c.ground_to_pixel_homography()
    for p, q in zip(pts[:2], uv[:2], strict=False):
        x = h @ np.array([p[0], p[1], 1.0])
        np.testing.assert_allclose(x[:2] / x[2], q, atol=1e-9)
    np.testing.assert_allclose(c.ground_homography() @ h / (c.ground_homography() @ h)[2, 2], np.eye(3), atol=1e-9)


def test_sky_pixels_have_no_ground_point() -> None:
    c = cam(tilt=10.0)
    en = c.pixel_to_ground(np.array([[320.0, 0.0], [320.0, c.horizon_v() - 1.0]]))
    assert np.isnan(en).all()


def test_taller_objects_project_higher_in_the_image() -> None:
    c = cam()
    uv, _ = c.project(np.array([[0.0, 12.0, 0.0], [0.0, 12.0, 1.8]]))
    assert uv[1, 1] < uv[0, 1]


@pytest.mark.parametrize(("hfov", "fx"), [(90.0, 320.0), (60.0, 320.0 / math.tan(math.radians(30.0)))])
def test_from_hfov_focal_length(hfov: float, fx: float) -> None:
    c = cam(hfov=hfov)
    assert c.fx == pytest.approx(fx) and c.fy == pytest.approx(fx)
    assert (c.cx, c.cy) == (320.0, 180.0)


@pytest.mark.parametrize("kwargs", [{"tilt_deg": 0.0}, {"tilt_deg": 95.0}, {"height_m": -1.0}, {"fx": 0.0}])
def test_invalid_parameters_raise(kwargs: dict[str, float]) -> None:
    base = dict(
        width=640,
        height=360,
        fx=500.0,
        fy=500.0,
        cx=320.0,
        cy=180.0,
        height_m=6.0,
        tilt_deg=30.0,
        heading_deg=0.0,
        lat=0.0,
        lon=0.0,
    )
    base.update(kwargs)
    with pytest.raises(ValueError):
        PinholeCamera(**base)  # type: ignore[arg-type]
