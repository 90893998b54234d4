"""Pixel <-> ground plane (ENU metres) <-> WGS-84 for one camera, through a plane homography.

Street cameras look at (locally) flat ground, so one 3x3 homography maps an image point where an object
touches the ground (e.g. the bottom centre of its box) to east/north metres around an origin, and from there
to WGS-84. It comes either from a modelled camera (`from_camera`: height, tilt, heading, intrinsics) or from
surveyed point pairs (`from_point_pairs`: >= 4 pixels clicked in the image, their lat/lon read off a map).

Sign convention (why `H` is not just "any H up to scale"): a homography is defined up to scale, but the
*sign* of that scale decides which side of the horizon is ground. `GroundMapping` keeps H scaled so that
``w = H[2] @ (u, v, 1) > 0`` exactly for pixels that see the ground in front of the camera; both constructors
guarantee it, and a hand-made `GroundMapping(H, ...)` must follow it (`from_homography` fixes the sign of any H
from one pixel known to see the ground). Pixels with ``w <= 0`` (sky, facades
above the horizon) map to NaN, never to a mirrored point behind the camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from gridwatch.calibration.errors import CalibrationInputError, DegenerateCalibrationError
from gridwatch.calibration.geo import enu_to_wgs84, wgs84_to_enu

if TYPE_CHECKING:
    from gridwatch.calibration.camera import PinholeCamera

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Point sets thinner than this fraction of their length (second / first principal axis) count as collinear:
#: a homography fitted to them is unconstrained across the line, however small the residuals look.
MIN_SPREAD_RATIO = 0.01
#: Relative size of the 8th singular value of the normalised DLT system below which the pairs do not fix the
#: 8 degrees of freedom of a homography (e.g. all points but one on a common line).
MIN_DLT_RANK_RATIO = 1e-8


@dataclass(frozen=True)
class FitReport:
    """How well a point-pair fit explains its own points; residuals are per input pair, inf if unmappable.

    `redundancy` is the number of inliers beyond the 4 that a homography needs: with 0 the fit is exact and
    the RMS says nothing about the calibration's quality, so add points.
    """

    n_points: int
    n_inliers: int
    inliers: tuple[bool, ...]
    rms_m: float
    rms_px: float
    max_m: float
    max_px: float
    residuals_m: tuple[float, ...]
    residuals_px: tuple[float, ...]

    @property
    def redundancy(self) -> int:
        return self.n_inliers - 4


@dataclass(frozen=True, eq=False)
class GroundMapping:
    """Pixel <-> ENU metres <-> WGS-84 through a ground homography.

    `H` maps pixels (u, v, 1) to (east, north, 1) in metres around (`origin_lat`, `origin_lon`), with the
    sign convention in the module docstring. `pixel_error_px` is how many pixels an image position is
    typically off (detector box jitter plus calibration error): `accuracy_m` turns it into metres, which is
    what an event's `accuracy_m` reports. Raise it for low-resolution streams or loose boxes.
    """

    H: FloatArray
    origin_lat: float
    origin_lon: float
    pixel_error_px: float = 2.0
    fit_report: FitReport | None = field(default=None, compare=False)
    H_inv: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        h = _validated_homography(self.H)
        if not (np.isfinite(self.origin_lat) and -90.0 <= self.origin_lat <= 90.0):
            raise CalibrationInputError(f"origin_lat must be in [-90, 90], got {self.origin_lat}")
        if not (np.isfinite(self.origin_lon) and -180.0 <= self.origin_lon <= 180.0):
            raise CalibrationInputError(f"origin_lon must be in [-180, 180], got {self.origin_lon}")
        if not self.pixel_error_px > 0:
            raise CalibrationInputError(f"pixel_error_px must be > 0, got {self.pixel_error_px}")
        h_inv = np.linalg.inv(h)
        h_inv = h_inv / np.linalg.norm(h_inv)  # positive scale: keeps depth > 0 in front of the camera
        h.setflags(write=False)
        h_inv.setflags(write=False)
        object.__setattr__(self, "H", h)
        object.__setattr__(self, "H_inv", h_inv)

    # ------------------------------------------------------------------------------ constructors
    @classmethod
    def from_camera(cls, cam: PinholeCamera, pixel_error_px: float = 2.0) -> GroundMapping:
        """The mapping of a modelled camera; the ENU origin is the ground point below it.

        Built from the camera's ground->pixel homography, whose third coordinate is the depth (> 0 in front),
        so its inverse already has the module's sign convention.
        """
        h = np.linalg.inv(np.asarray(cam.ground_to_pixel_homography(), dtype=np.float64))
        return cls(h, float(cam.lat), float(cam.lon), pixel_error_px)

    @classmethod
    def from_homography(
        cls,
        h: npt.ArrayLike,
        origin_lat: float,
        origin_lon: float,
        ground_pixel: tuple[float, float],
        pixel_error_px: float = 2.0,
    ) -> GroundMapping:
        """Wrap a pixel -> ENU homography of unknown sign (e.g. one normalised to H[2,2] = 1, or saved by
        another tool), fixing the sign with one pixel known to see the ground, such as the bottom centre of
        the image. Use this rather than the raw constructor whenever the sign convention is not guaranteed.
        """
        arr = np.asarray(h, dtype=np.float64)
        w = _apply(arr, _points(ground_pixel, "ground_pixel"))[0, 2] if arr.shape == (3, 3) else 1.0
        if w == 0 or not np.isfinite(w):
            raise DegenerateCalibrationError(f"ground_pixel {ground_pixel} lies on the horizon of H")
        return cls(arr if w > 0 else -arr, origin_lat, origin_lon, pixel_error_px)

    @classmethod
    def from_point_pairs(
        cls,
        pixels: npt.ArrayLike,
        lats: npt.ArrayLike,
        lons: npt.ArrayLike,
        origin: tuple[float, float] | None = None,
        ransac_px: float | None = None,
        pixel_error_px: float = 2.0,
    ) -> GroundMapping:
        """Fit pixel -> ENU from >= 4 surveyed pairs (pixel (N,2), WGS-84 lat (N,), lon (N,)).

        `origin` (lat, lon) is the ENU origin; default the centroid of the points, which keeps the metric
        plane small and the fit well conditioned. `ransac_px`: when set, pairs whose pixel reprojection error
        exceeds it are dropped as outliers (a mislabelled landmark) before the least-squares fit; leave it
        None for a handful of careful points, where RANSAC would rather discard good ones.
        Raises `DegenerateCalibrationError` for too few, collinear or horizon-straddling points.
        """
        pix, la, lo = _pairs(pixels, lats, lons)
        lat0, lon0 = origin if origin is not None else (float(np.mean(la)), float(np.mean(lo)))
        east, north = wgs84_to_enu(la, lo, lat0, lon0)
        en = np.column_stack([east, north])
        _check_general_position(pix, en, "")
        inliers = _ransac_inliers(pix, en, ransac_px) if ransac_px is not None else np.ones(len(pix), bool)
        h = _fit_homography(pix[inliers], en[inliers])
        mapping = cls(_ground_side_positive(h, pix[inliers]), lat0, lon0, pixel_error_px)
        return replace(mapping, fit_report=_fit_report(mapping, pix, en, inliers))

    # ---------------------------------------------------------------------------------- mappings
    def pixel_to_enu(self, uv: npt.ArrayLike) -> FloatArray:
        """Pixels (N,2) -> (east, north) metres (N,2); NaN rows for pixels at or above the horizon."""
        hom = _apply(self.H, _points(uv, "uv"))
        w = hom[:, 2:3]
        ground = w > 0
        en: FloatArray = np.where(ground, hom[:, :2] / np.where(ground, w, 1.0), np.nan)
        return en

    def enu_to_pixel(self, en: npt.ArrayLike) -> FloatArray:
        """(east, north) metres (N,2) -> pixels (N,2); NaN rows for ground points behind the camera."""
        hom = _apply(self.H_inv, _points(en, "en"))
        depth = hom[:, 2:3]
        front = depth > 0
        uv: FloatArray = np.where(front, hom[:, :2] / np.where(front, depth, 1.0), np.nan)
        return uv

    def pixel_to_wgs84(self, uv: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Pixels (N,2) -> (lat (N,), lon (N,)) in WGS-84; NaN for pixels that do not see the ground."""
        en = self.pixel_to_enu(uv)
        lat, lon = enu_to_wgs84(en[:, 0], en[:, 1], self.origin_lat, self.origin_lon)
        return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)

    def wgs84_to_pixel(self, lat: npt.ArrayLike, lon: npt.ArrayLike) -> FloatArray:
        """WGS-84 (lat (N,), lon (N,)) -> pixels (N,2); NaN rows for points behind the camera."""
        la = np.atleast_1d(np.asarray(lat, dtype=np.float64)).ravel()
        lo = np.atleast_1d(np.asarray(lon, dtype=np.float64)).ravel()
        if la.shape != lo.shape:
            raise CalibrationInputError(f"lat and lon must have the same length, got {la.size} and {lo.size}")
        east, north = wgs84_to_enu(la, lo, self.origin_lat, self.origin_lon)
        return self.enu_to_pixel(np.column_stack([east, north]))

    # ------------------------------------------------------------------------------------ quality
    def is_ground(self, uv: npt.ArrayLike) -> BoolArray:
        """True for pixels strictly below the horizon (their ray hits the ground in front of the camera)."""
        w = _apply(self.H, _points(uv, "uv"))[:, 2]
        ground: BoolArray = w > 0
        return ground

    def accuracy_m(self, uv: npt.ArrayLike) -> FloatArray:
        """Ground error (metres, (N,)) caused by `pixel_error_px` of image error at each pixel.

        The largest ground displacement when the pixel moves by `pixel_error_px` left, right, up or down: a
        few centimetres near the camera, growing without bound toward the horizon (one pixel there spans
        kilometres), and inf at or above it. This is why far-away detections get a wide accuracy radius.
        """
        pts = _points(uv, "uv")
        e = self.pixel_error_px
        steps = np.array([[e, 0.0], [-e, 0.0], [0.0, e], [0.0, -e]])
        base = self.pixel_to_enu(pts)
        moved = self.pixel_to_enu((pts[:, None, :] + steps[None, :, :]).reshape(-1, 2)).reshape(-1, 4, 2)
        dist = np.linalg.norm(moved - base[:, None, :], axis=2).max(axis=1)
        acc: FloatArray = np.where(np.isfinite(dist), dist, np.inf)
        return acc

    def horizon_line(self) -> FloatArray:
        """(a, b, c) with ``a*u + b*v + c = 0`` on the horizon; ``a*u + b*v + c > 0`` on the ground side."""
        line: FloatArray = self.H[2].copy()
        return line


# ------------------------------------------------------------------------------------------ helpers
def _validated_homography(h: npt.ArrayLike) -> FloatArray:
    arr = np.array(h, dtype=np.float64)  # copy: never share the caller's buffer
    if arr.shape != (3, 3) or not np.all(np.isfinite(arr)):
        raise CalibrationInputError(f"H must be a finite 3x3 matrix, got shape {arr.shape}")
    arr = arr / np.linalg.norm(arr)  # positive scale only: the sign carries the ground side
    if np.linalg.cond(arr) > 1e12:
        raise DegenerateCalibrationError("H is singular: it collapses the image onto a line or a point")
    return arr


def _points(a: npt.ArrayLike, name: str) -> FloatArray:
    """(N,2) float64 from (N,2) or a single (2,) point."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise CalibrationInputError(f"{name} must have shape (N, 2), got {arr.shape}")
    return arr


def _apply(h: FloatArray, pts: FloatArray) -> FloatArray:
    """Homogeneous product h @ (x, y, 1) for each row, (N,3)."""
    out: FloatArray = pts @ h[:, :2].T + h[:, 2]
    return out


def _pairs(
    pixels: npt.ArrayLike, lats: npt.ArrayLike, lons: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    pix = _points(pixels, "pixels")
    la = np.asarray(lats, dtype=np.float64).ravel()
    lo = np.asarray(lons, dtype=np.float64).ravel()
    if not (len(pix) == la.size == lo.size):
        raise CalibrationInputError(
            f"pixels, lats and lons must have the same length, got {len(pix)}, {la.size}, {lo.size}"
        )
    if not (np.all(np.isfinite(pix)) and np.all(np.isfinite(la)) and np.all(np.isfinite(lo))):
        raise CalibrationInputError("point pairs contain NaN or inf")
    if len(pix) < 4:
        raise DegenerateCalibrationError(
            f"need at least 4 pixel <-> lat/lon pairs to fit a ground homography, got {len(pix)}"
        )
    return pix, la, lo


def _check_general_position(pix: FloatArray, en: FloatArray, what: str) -> None:
    """Reject point sets that cannot fix a homography, with a message saying which side is at fault."""
    _check_spread(pix, f"{what}pixel points", "px")
    _check_spread(en, f"{what}ground points", "m")
    if _dlt_rank_ratio(pix, en) < MIN_DLT_RANK_RATIO:
        raise DegenerateCalibrationError(
            f"{what}point pairs do not determine a homography: fewer than 4 of them are in general position "
            "(e.g. all but one on a common line, or duplicates); add points off that line"
        )


def _check_spread(pts: FloatArray, what: str, unit: str) -> None:
    centred = pts - pts.mean(axis=0)
    s = np.linalg.svd(centred, compute_uv=False)
    if s[0] == 0 or s[1] / s[0] < MIN_SPREAD_RATIO:
        raise DegenerateCalibrationError(
            f"{what} are collinear (spread {s[1]:.3g} {unit} across their common line vs {s[0]:.3g} {unit} "
            "along it): a homography needs >= 4 points spread in both directions, e.g. the four corners "
            "of a road marking plus points at different distances"
        )


def _normalise(pts: FloatArray) -> FloatArray:
    """Hartley normalisation: centroid at 0, mean distance sqrt(2), so the DLT system is well scaled."""
    centred = pts - pts.mean(axis=0)
    scale = np.sqrt(2.0) / max(float(np.mean(np.linalg.norm(centred, axis=1))), 1e-300)
    out: FloatArray = centred * scale
    return out


def _dlt_rank_ratio(src: FloatArray, dst: FloatArray) -> float:
    """s[7] / s[0] of the normalised DLT matrix: ~0 when the pairs leave the homography underdetermined."""
    x, y = _normalise(src).T
    u, v = _normalise(dst).T
    one, zero = np.ones_like(x), np.zeros_like(x)
    rows_u = np.column_stack([x, y, one, zero, zero, zero, -u * x, -u * y, -u])
    rows_v = np.column_stack([zero, zero, zero, x, y, one, -v * x, -v * y, -v])
    s = np.linalg.svd(np.vstack([rows_u, rows_v]), compute_uv=False)
    return float(s[7] / s[0]) if len(s) >= 8 else 0.0


def _ransac_inliers(pix: FloatArray, en: FloatArray, ransac_px: float) -> BoolArray:
    """Inlier mask with the threshold in *pixels*: RANSAC runs ground -> pixel, whose residuals are pixels."""
    if not ransac_px > 0:
        raise CalibrationInputError(f"ransac_px must be > 0, got {ransac_px}")
    _, mask = cv2.findHomography(en, pix, cv2.RANSAC, float(ransac_px))
    inliers = np.zeros(len(pix), bool) if mask is None else mask.ravel().astype(bool)
    if inliers.sum() < 4:
        raise DegenerateCalibrationError(
            f"RANSAC kept {int(inliers.sum())} of {len(pix)} pairs within {ransac_px} px; need >= 4. "
            "Check the pairs or raise ransac_px"
        )
    _check_general_position(pix[inliers], en[inliers], "RANSAC inlier ")
    return inliers


def _fit_homography(pix: FloatArray, en: FloatArray) -> FloatArray:
    h, _ = cv2.findHomography(pix, en, 0)
    if h is None or not np.all(np.isfinite(h)):
        raise DegenerateCalibrationError("could not fit a homography to the point pairs (degenerate layout)")
    return np.asarray(h, dtype=np.float64)


def _ground_side_positive(h: FloatArray, pix: FloatArray) -> FloatArray:
    """Flip H's sign so the calibration pixels (which all see the ground) have w > 0."""
    w = _apply(h, pix)[:, 2]
    if np.all(w > 0):
        return h
    if np.all(w < 0):
        return -h
    raise DegenerateCalibrationError(
        "the fitted horizon passes between the calibration points: a pair is mislabelled, or a pixel is "
        "above the horizon; check the pairs (or set ransac_px to drop outliers)"
    )


def _fit_report(mapping: GroundMapping, pix: FloatArray, en: FloatArray, inliers: BoolArray) -> FitReport:
    res_m = np.linalg.norm(mapping.pixel_to_enu(pix) - en, axis=1)
    res_px = np.linalg.norm(mapping.enu_to_pixel(en) - pix, axis=1)
    res_m = np.where(np.isfinite(res_m), res_m, np.inf)
    res_px = np.where(np.isfinite(res_px), res_px, np.inf)
    in_m, in_px = res_m[inliers], res_px[inliers]
    return FitReport(
        n_points=len(pix),
        n_inliers=int(inliers.sum()),
        inliers=tuple(bool(b) for b in inliers),
        rms_m=float(np.sqrt(np.mean(in_m**2))),
        rms_px=float(np.sqrt(np.mean(in_px**2))),
        max_m=float(in_m.max()),
        max_px=float(in_px.max()),
        residuals_m=tuple(float(r) for r in res_m),
        residuals_px=tuple(float(r) for r in res_px),
    )
