"""Drawing: project ``Thing``s with the pinhole camera and paint them far-to-near (painter's algorithm).

The same pass paints an id buffer, so each label knows how much of its object is actually visible;
labels are the projected 3D extents (amodal), clipped to the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from gridwatch.calibration.camera import PinholeCamera
from gridwatch.synth.primitives import Blob, Face, FloatArray, Line, Thing
from gridwatch.synth.scenario import LookSpec
from gridwatch.synth.world import Scenery

Image = NDArray[np.uint8]

NEAR_M = 0.3
_SHIFT = 4  # sub-pixel bits for cv2 polygon drawing
_SCALE = float(1 << _SHIFT)

#: A label is kept only if at least this share of its box is inside the image ...
MIN_IN_VIEW = 0.3
#: ... at least this share of its pixels is not hidden by nearer objects ...
MIN_VISIBLE = 0.3
#: ... and its clipped box is at least this many pixels on each side.
MIN_SIDE_PX = 4.0


@dataclass(frozen=True)
class Label:
    """One object's box in pixels (x1, y1, x2, y2), already clipped to the image."""

    class_id: int
    key: str
    x1: float
    y1: float
    x2: float
    y2: float
    visibility: float

    def yolo(self, width: int, height: int) -> tuple[int, float, float, float, float]:
        """(class, cx, cy, w, h) normalised to the image size, as Ultralytics expects."""
        return (
            self.class_id,
            (self.x1 + self.x2) / 2 / width,
            (self.y1 + self.y2) / 2 / height,
            (self.x2 - self.x1) / width,
            (self.y2 - self.y1) / height,
        )


@dataclass(frozen=True)
class RenderedFrame:
    image: Image
    labels: list[Label]


# ------------------------------------------------------------------------------------ projection
def _clip_near(cam_pts: FloatArray) -> FloatArray:
    """Sutherland-Hodgman clip of a polygon (camera coordinates) against the plane z = NEAR_M."""
    out: list[FloatArray] = []
    n = len(cam_pts)
    for i in range(n):
        a, b = cam_pts[i], cam_pts[(i + 1) % n]
        a_in, b_in = a[2] >= NEAR_M, b[2] >= NEAR_M
        if a_in:
            out.append(a)
        if a_in != b_in:
            f = (NEAR_M - a[2]) / (b[2] - a[2])
            out.append(a + f * (b - a))
    return np.array(out) if out else np.zeros((0, 3))


def _to_pixels(cam: PinholeCamera, cam_pts: FloatArray) -> FloatArray:
    z = cam_pts[:, 2]
    return np.stack([cam.fx * cam_pts[:, 0] / z + cam.cx, cam.fy * cam_pts[:, 1] / z + cam.cy], axis=1)


def project_polygon(cam: PinholeCamera, points_enu: FloatArray) -> FloatArray | None:
    """Project a 3D polygon, clipped to the near plane; None if nothing of it is in front."""
    c = cam.to_camera(points_enu)
    if c[:, 2].min() < NEAR_M:
        c = _clip_near(c)
        if len(c) < 3:
            return None
    return _to_pixels(cam, c)


def _front_facing(cam: PinholeCamera, face: Face) -> bool:
    if face.two_sided:
        return True
    p = face.points
    normal = np.cross(p[1] - p[0], p[2] - p[0])
    return float(normal @ (cam.centre - p.mean(axis=0))) > 0.0


@dataclass(frozen=True)
class _Shape:
    """A primitive ready to draw: its depth, pixel geometry and colour."""

    depth: float
    kind: str  # "poly", "ellipse", "line"
    pix: FloatArray  # poly/line vertices (k,2); ellipse: [[cx, cy], [ax, ay]]
    colour: tuple[int, int, int]
    thickness: int = 1

    def bounds(self) -> tuple[float, float, float, float]:
        if self.kind == "ellipse":
            (cx, cy), (ax, ay) = self.pix
            return cx - ax, cy - ay, cx + ax, cy + ay
        pad = self.thickness / 2 if self.kind == "line" else 0.0
        return (
            float(self.pix[:, 0].min()) - pad,
            float(self.pix[:, 1].min()) - pad,
            float(self.pix[:, 0].max()) + pad,
            float(self.pix[:, 1].max()) + pad,
        )


def _face_shape(cam: PinholeCamera, face: Face) -> _Shape | None:
    if not _front_facing(cam, face):
        return None
    pix = project_polygon(cam, face.points)
    if pix is None:
        return None
    depth = float(cam.to_camera(face.points)[:, 2].mean())
    return _Shape(depth, "poly", pix, face.colour)


def _blob_shape(cam: PinholeCamera, blob: Blob) -> _Shape | None:
    c = cam.to_camera(blob.centre[None, :])[0]
    if c[2] < NEAR_M:
        return None
    uv = _to_pixels(cam, c[None, :])[0]
    axes = np.array([cam.fx * blob.rx / c[2], cam.fy * blob.ry / c[2]])
    return _Shape(float(c[2]), "ellipse", np.stack([uv, axes]), blob.colour)


def _line_shape(cam: PinholeCamera, line: Line) -> _Shape | None:
    c = cam.to_camera(line.points)
    c = c[c[:, 2] >= NEAR_M]
    if len(c) < 2:
        return None
    z = float(c[:, 2].mean())
    thick = max(line.min_px, round(cam.fx * line.thickness_m / z))
    return _Shape(z, "line", _to_pixels(cam, c), line.colour, thick)


def thing_shapes(cam: PinholeCamera, thing: Thing) -> list[_Shape]:
    """Drawable shapes of one thing, sorted far to near."""
    shapes = [_face_shape(cam, f) for f in thing.faces]
    shapes += [_blob_shape(cam, b) for b in thing.blobs]
    shapes += [_line_shape(cam, ln) for ln in thing.lines]
    kept = [s for s in shapes if s is not None]
    return sorted(kept, key=lambda s: -s.depth)


# --------------------------------------------------------------------------------------- drawing
def _draw(
    img: NDArray[Any],
    shape: _Shape,
    colour: tuple[int, int, int] | int,
    aa: bool,
    offset: tuple[float, float] = (0.0, 0.0),
) -> None:
    line_type = cv2.LINE_AA if aa else cv2.LINE_8
    if shape.kind == "ellipse":
        (cx, cy), (ax, ay) = shape.pix
        centre = (round((cx - offset[0]) * _SCALE), round((cy - offset[1]) * _SCALE))
        axes = (max(1, round(ax * _SCALE)), max(1, round(ay * _SCALE)))
        cv2.ellipse(img, centre, axes, 0, 0, 360, colour, -1, line_type, _SHIFT)
        return
    pts = np.round((shape.pix - offset) * _SCALE).astype(np.int32)
    # Keep coordinates in a sane range: cv2 overflows on huge values from near-plane points.
    pts = np.clip(pts, -(1 << 26), 1 << 26)
    if shape.kind == "line":
        cv2.polylines(img, [pts], False, colour, shape.thickness, line_type, _SHIFT)
    else:
        cv2.fillPoly(img, [pts], colour, line_type, _SHIFT)


def render_background(cam: PinholeCamera, scenery: Scenery) -> Image:
    """Sky gradient, ground layers in order, then the facade: static for a whole clip."""
    h, w = cam.height, cam.width
    rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    sky_top, sky_low = np.array([200, 160, 120], np.float32), np.array([235, 220, 205], np.float32)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (sky_top * (1 - rows) + sky_low * rows)[:, None, :].astype(np.uint8)
    for face in [*scenery.ground, *scenery.facade]:
        shape = _face_shape(cam, face)
        if shape is not None:
            _draw(img, shape, shape.colour, aa=True)
    return img


def _draw_shadows(cam: PinholeCamera, img: Image, things: list[Thing]) -> None:
    mask = np.zeros(img.shape[:2], np.uint8)
    for thing in things:
        if thing.shadow is None:
            continue
        pts3 = np.hstack([thing.shadow, np.zeros((len(thing.shadow), 1))])
        pix = project_polygon(cam, pts3)
        if pix is not None:
            _draw(mask, _Shape(0.0, "poly", pix, (0, 0, 0)), 1, aa=False)
    if mask.any():
        img[mask > 0] = (img[mask > 0] * 0.55).astype(np.uint8)


def _shapes_box(shapes: list[_Shape]) -> tuple[float, float, float, float]:
    b = np.array([s.bounds() for s in shapes])
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def _label_points_box(cam: PinholeCamera, thing: Thing) -> tuple[float, float, float, float] | None:
    assert thing.label_points is not None
    c = cam.to_camera(thing.label_points)
    c = c[c[:, 2] >= NEAR_M]
    if len(c) == 0:
        return None
    pix = _to_pixels(cam, c)
    pad = max(1.0, cam.fx * thing.label_pad_m / float(c[:, 2].min()))
    return (
        float(pix[:, 0].min()) - pad,
        float(pix[:, 1].min()) - pad,
        float(pix[:, 0].max()) + pad,
        float(pix[:, 1].max()) + pad,
    )


def _label_for(
    cam: PinholeCamera, thing: Thing, shapes: list[_Shape], ids: NDArray[np.uint16], index: int
) -> Label | None:
    if thing.class_id is None or not shapes:
        return None
    box = _label_points_box(cam, thing) if thing.label_points is not None else _shapes_box(shapes)
    if box is None:
        return None
    x1, y1, x2, y2 = box
    cx1, cy1 = max(0.0, x1), max(0.0, y1)
    cx2, cy2 = min(float(cam.width), x2), min(float(cam.height), y2)
    if cx2 - cx1 < MIN_SIDE_PX or cy2 - cy1 < MIN_SIDE_PX:
        return None
    full = max(1e-6, (x2 - x1) * (y2 - y1))
    if (cx2 - cx1) * (cy2 - cy1) / full < MIN_IN_VIEW:
        return None
    ix1, iy1, ix2, iy2 = int(cx1), int(cy1), int(np.ceil(cx2)), int(np.ceil(cy2))
    own = np.zeros((iy2 - iy1, ix2 - ix1), np.uint8)
    for s in shapes:
        _draw(own, s, 1, aa=False, offset=(ix1, iy1))
    own_px = int(own.sum())
    if own_px == 0:
        return None
    visible = int(np.count_nonzero((ids[iy1:iy2, ix1:ix2] == index) & (own > 0)))
    vis = visible / own_px
    if vis < MIN_VISIBLE:
        return None
    return Label(thing.class_id, thing.key, float(cx1), float(cy1), float(cx2), float(cy2), vis)


def render_frame(cam: PinholeCamera, background: Image, things: list[Thing], shadows: bool = True) -> RenderedFrame:
    """Paint things over a copy of the background; return the image and the visible labels."""
    img = background.copy()
    if shadows:
        _draw_shadows(cam, img, things)
    ids = np.zeros(img.shape[:2], np.uint16)
    depth = [float(cam.to_camera(t.anchor[None, :])[0, 2]) for t in things]
    order = sorted(range(len(things)), key=lambda i: -depth[i])
    all_shapes: dict[int, list[_Shape]] = {}
    for i in order:
        shapes = thing_shapes(cam, things[i])
        all_shapes[i] = shapes
        for s in shapes:
            _draw(img, s, s.colour, aa=True)
            _draw(ids, s, i + 1, aa=False)
    labels = [_label_for(cam, things[i], all_shapes[i], ids, i + 1) for i in order]
    return RenderedFrame(img, [lb for lb in labels if lb is not None])


# ----------------------------------------------------------------------------------------- look
def colour_gains(temp_k: float) -> NDArray[np.float32]:
    """BGR gains approximating a white balance off by ``temp_k`` (6500 K = neutral)."""
    k = float(np.clip((temp_k - 6500.0) / 6500.0, -0.7, 1.0))
    return np.array([1.0 + 0.35 * k, 1.0 + 0.05 * k, 1.0 - 0.3 * k], np.float32)


def apply_look(img: Image, look: LookSpec, rng: np.random.Generator) -> Image:
    """Lighting, white balance, blur, sensor noise and JPEG artefacts, as a camera would add them."""
    gain = colour_gains(look.colour_temp_k) * look.brightness * (1.0 + look.flicker * float(rng.standard_normal()))
    out = img.astype(np.float32) * gain
    if look.blur_sigma > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), look.blur_sigma)
    if look.noise_sigma > 0:
        out += rng.standard_normal(out.shape, dtype=np.float32) * look.noise_sigma
    res = np.clip(out, 0, 255).astype(np.uint8)
    if look.jpeg_quality < 100:
        ok, buf = cv2.imencode(".jpg", res, [cv2.IMWRITE_JPEG_QUALITY, look.jpeg_quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            res = decoded.astype(np.uint8)
    return res
