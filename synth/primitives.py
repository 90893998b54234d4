"""3D drawing primitives in ENU metres: pure data plus the mesh builders the actors use.

Nothing here touches pixels; ``synth.render`` turns these into an image. Colours are BGR (OpenCV).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
Bgr = tuple[int, int, int]


@dataclass(frozen=True)
class Face:
    """A planar polygon. ``two_sided`` faces are never back-face culled (canopies, open sheets)."""

    points: FloatArray  # (k, 3)
    colour: Bgr
    two_sided: bool = False


@dataclass(frozen=True)
class Blob:
    """An ellipsoid-ish lump drawn as a screen-space ellipse: heads, bags. ``rx`` horizontal, ``ry`` up."""

    centre: FloatArray  # (3,)
    rx: float
    ry: float
    colour: Bgr


@dataclass(frozen=True)
class Line:
    """A cable: a 3D polyline drawn with a thickness that shrinks with distance."""

    points: FloatArray  # (k, 3)
    thickness_m: float
    colour: Bgr
    min_px: int = 2


@dataclass
class Thing:
    """Everything drawn for one actor in one frame, plus what the labeller and truth need.

    ``class_id`` is None for scenery that must not be labelled (poles, intact overhead cables).
    ``anchor`` is the actor's ground point (ENU), used for depth ordering and zone membership.
    """

    key: str
    class_id: int | None
    anchor: FloatArray
    faces: list[Face] = field(default_factory=list)
    blobs: list[Blob] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    shadow: FloatArray | None = None  # ground polygon (k, 2) darkened under the actor
    label_points: FloatArray | None = None  # (k, 3): if set, the label box spans only these points
    label_pad_m: float = 0.0  # half-thickness added around ``label_points`` (cables)


@dataclass(frozen=True)
class Pose:
    """Ground position and facing of an actor, in ENU: ``forward`` is a horizontal unit vector."""

    east: float
    north: float
    forward: tuple[float, float]

    def to_world(self, local: FloatArray) -> FloatArray:
        """Local (x forward, y left, z up) points (N,3) -> ENU (N,3)."""
        fx, fy = self.forward
        lx, ly = -fy, fx
        pts = np.asarray(local, dtype=np.float64).reshape(-1, 3)
        e = self.east + pts[:, 0] * fx + pts[:, 1] * lx
        n = self.north + pts[:, 0] * fy + pts[:, 1] * ly
        return np.stack([e, n, pts[:, 2]], axis=1)

    @property
    def anchor(self) -> FloatArray:
        return np.array([self.east, self.north, 0.0])


# Corner order: bottom ring then top ring, counter-clockwise seen from above in local coordinates.
_CUBOID_FACES = ((0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7))


def local_box(cx: float, cy: float, z0: float, length: float, width: float, height: float) -> FloatArray:
    """Axis-aligned box corners (8,3) in local coordinates, centred at (cx, cy), from z0 up."""
    hx, hy = length / 2.0, width / 2.0
    ring = np.array([[cx - hx, cy - hy], [cx + hx, cy - hy], [cx + hx, cy + hy], [cx - hx, cy + hy]])
    bottom = np.hstack([ring, np.full((4, 1), z0)])
    top = np.hstack([ring, np.full((4, 1), z0 + height)])
    return np.vstack([bottom, top])


def cuboid_faces(corners: FloatArray, colours: Bgr | list[Bgr]) -> list[Face]:
    """Six outward-wound faces of a (possibly rotated) box given its 8 world corners.

    ``colours`` is one colour or six (bottom, top, then the four sides), so sides can be shaded.
    """
    cols = colours if isinstance(colours, list) else [colours] * 6
    return [Face(corners[list(idx)], cols[i]) for i, idx in enumerate(_CUBOID_FACES)]


def shade(colour: Bgr, factor: float) -> Bgr:
    """Scale a colour; a cheap stand-in for Lambert shading of differently facing sides."""
    return (
        int(min(255, colour[0] * factor)),
        int(min(255, colour[1] * factor)),
        int(min(255, colour[2] * factor)),
    )


def shaded_box(pose: Pose, corners_local: FloatArray, colour: Bgr) -> list[Face]:
    """A box in world coordinates with top lit, sides half-lit, bottom dark."""
    sides = [shade(colour, f) for f in (0.85, 0.7, 0.95, 0.6)]
    return cuboid_faces(pose.to_world(corners_local), [shade(colour, 0.4), shade(colour, 1.15), *sides])


def rgb_to_bgr(rgb: tuple[int, int, int]) -> Bgr:
    return (rgb[2], rgb[1], rgb[0])
