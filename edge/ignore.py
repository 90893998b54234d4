"""Per-camera ignore masks: parts of the view where nothing is ever reported.

A site config can list polygons (pixels of the analysed frame) per camera under `cameras[].ignore`: a burnt-in
clock or logo, a flag, a tree, a screen, a neighbour's window. Inside them:

- a detection whose footprint (the bottom-centre anchor of its box, where zones test membership too) lies inside
  is dropped before the tracker, so no rule ever sees it;
- the scene-change stage never counts a pixel as foreground (`rasterise` gives its mask at work resolution).

The automatic unstable-pixel mask (`gridwatch.edge.scene.unstable`) handles flicker it can see; these masks are
for what an engineer knows about the view.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import supervision as sv

from gridwatch.edge.config import IgnoreMaskConfig
from gridwatch.pipelines.types import anchors_of
from gridwatch.pipelines.zones import Zone


def build_ignore(masks: list[IgnoreMaskConfig]) -> tuple[Zone, ...]:
    return tuple(Zone(m.name, tuple((float(x), float(y)) for x, y in m.points)) for m in masks)


def drop_ignored(detections: sv.Detections, polygons: tuple[Zone, ...]) -> sv.Detections:
    """`detections` without the rows whose footprint lies inside an ignore polygon (the input is not mutated)."""
    if not polygons or len(detections) == 0:
        return detections
    anchors = anchors_of(np.asarray(detections.xyxy, dtype=np.float64))
    keep = np.array([not any(p.contains((float(x), float(y))) for p in polygons) for x, y in anchors], dtype=bool)
    if keep.all():
        return detections
    kept = detections[keep]
    assert isinstance(kept, sv.Detections)
    return kept


def rasterise(polygons: tuple[Zone, ...], scale: float, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """The polygons (frame pixels) filled into a mask of `shape` (h, w) whose pixels are `scale` frame pixels."""
    out = np.zeros(shape, np.uint8)
    for p in polygons:
        pts = np.round(np.asarray(p.polygon, dtype=np.float64) / scale).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(out, [pts], 1)
    return out.astype(bool)
