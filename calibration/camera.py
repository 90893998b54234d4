"""A pure pinhole camera model over a local ENU frame.

The world frame is East-North-Up in metres with its origin on the ground directly below the camera
(so the camera centre is at ``(0, 0, height_m)``). The same object serves the synthetic renderer
(3D -> pixels) and the edge geotagger (pixel -> ground plane -> WGS-84), so both directions live
here, side by side, and are tested against each other.

Camera axes follow the OpenCV convention: x right, y down, z forward (optical axis).
No lens distortion: street cameras are undistorted before this model is applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Points closer than this along the optical axis are treated as behind the camera, because their
#: projection is numerically meaningless (division by ~0).
MIN_DEPTH_M = 1e-3


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics plus a pose given the way installers measure it: mast height, tilt and heading.

    ``tilt_deg`` is the angle of the optical axis below the horizon (> 0 looks down).
    ``heading_deg`` is the compass bearing of the optical axis (0 = north, 90 = east).
    ``lat``/``lon`` are the WGS-84 coordinates of the ground point below the camera (ENU origin).
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    height_m: float
    tilt_deg: float
    heading_deg: float
    lat: float
    lon: float

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.height_m <= 0:
            raise ValueError(f"height_m must be > 0 (camera above the ground), got {self.height_m}")
        if not 0.0 < self.tilt_deg < 90.0:
            raise ValueError(f"tilt_deg must be in (0, 90) so the ground is visible, got {self.tilt_deg}")

    @classmethod
    def from_hfov(
        cls,
        width: int,
        height: int,
        hfov_deg: float,
        height_m: float,
        tilt_deg: float,
        heading_deg: float,
        lat: float,
        lon: float,
    ) -> PinholeCamera:
        """Square pixels, principal point at the image centre, focal length from the horizontal FOV."""
        if not 0.0 < hfov_deg < 180.0:
            raise ValueError(f"hfov_deg must be in (0, 180), got {hfov_deg}")
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width, height, f, f, width / 2.0, height / 2.0, height_m, tilt_deg, heading_deg, lat, lon)

    # ----------------------------------------------------------------------------------- matrices
    @property
    def K(self) -> FloatArray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def R(self) -> FloatArray:
        """Rows are the camera's x (right), y (down), z (forward) axes expressed in ENU."""
        h = math.radians(self.heading_deg)
        t = math.radians(self.tilt_deg)
        horizontal = np.array([math.sin(h), math.cos(h), 0.0])
        forward = math.cos(t) * horizontal + np.array([0.0, 0.0, -math.sin(t)])
        right = np.array([math.cos(h), -math.sin(h), 0.0])
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    @property
    def centre(self) -> FloatArray:
        return np.array([0.0, 0.0, self.height_m])

    # ------------------------------------------------------------------------------- 3D -> pixels
    def to_camera(self, points_enu: FloatArray) -> FloatArray:
        """ENU points (N,3) -> camera-frame points (N,3); z is the depth along the optical axis."""
        pts = np.asarray(points_enu, dtype=np.float64).reshape(-1, 3)
        result: FloatArray = (pts - self.centre) @ self.R.T
        return result

    def project(self, points_enu: FloatArray) -> tuple[FloatArray, BoolArray]:
        """Project ENU points (N,3) to pixels (N,2); ``in_front`` is False for points behind the camera.

        Pixels of points behind the camera are still returned (mirrored) so array shapes stay fixed;
        callers must mask them out.
        """
        cam = self.to_camera(points_enu)
        z = cam[:, 2]
        in_front: BoolArray = z > MIN_DEPTH_M
        safe_z = np.where(in_front, z, MIN_DEPTH_M)
        u = self.fx * cam[:, 0] / safe_z + self.cx
        v = self.fy * cam[:, 1] / safe_z + self.cy
        return np.stack([u, v], axis=1), in_front

    # ------------------------------------------------------------------------------ ground plane
    def ground_to_pixel_homography(self) -> FloatArray:
        """3x3 H with ``pixel ~ H @ (east, north, 1)`` for points on the ground plane (up = 0)."""
        r = self.R
        t = -r @ self.centre
        m = np.stack([r[:, 0], r[:, 1], t], axis=1)
        h: FloatArray = self.K @ m
        return h

    def ground_homography(self) -> FloatArray:
        """3x3 H with ``(east, north, 1) ~ H @ (u, v, 1)``: pixel -> ground plane."""
        h = np.linalg.inv(self.ground_to_pixel_homography())
        scale = h[2, 2] if abs(h[2, 2]) > 1e-12 else 1.0
        result: FloatArray = np.asarray(h / scale, dtype=np.float64)
        return result

    def pixel_to_ground(self, uv: FloatArray) -> FloatArray:
        """Pixels (N,2) -> ground (east, north) metres (N,2).

        Pixels above the horizon have no ground intersection; they come back as NaN rather than as a
        point behind the camera, so a caller can never geotag the sky.
        """
        pts = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        homog = np.hstack([pts, np.ones((len(pts), 1))]) @ self.ground_homography().T
        w = homog[:, 2:3]
        en = homog[:, :2] / np.where(np.abs(w) < 1e-12, np.nan, w)
        # A valid ground point lies in front of the camera: check the ray actually goes down.
        rays = np.hstack([(pts - [self.cx, self.cy]) / [self.fx, self.fy], np.ones((len(pts), 1))])
        down = (rays @ self.R)[:, 2] < 0.0
        en[~down] = np.nan
        result: FloatArray = en
        return result

    def ground_to_pixel(self, en: FloatArray) -> FloatArray:
        """Ground (east, north) metres (N,2) -> pixels (N,2); NaN for ground points behind the camera."""
        pts = np.asarray(en, dtype=np.float64).reshape(-1, 2)
        uv, in_front = self.project(np.hstack([pts, np.zeros((len(pts), 1))]))
        uv[~in_front] = np.nan
        return uv

    def horizon_v(self) -> float:
        """Image row of the horizon at the principal column: everything above it is sky/facade."""
        return self.cy - self.fy * math.tan(math.radians(self.tilt_deg))
