"""Keyframed tracks -> a box per frame, the way the labelling tools themselves interpolate.

CVAT for video 1.1: a track is a list of shapes at frames; between two shapes the box is linearly
interpolated when the earlier one is not `outside`; from an `outside` shape on, the object is absent until the
next shape; after the last shape a visible object stays where it is until the end of the clip (CVAT shows it
there). `occluded` is carried from the earlier shape.

Label Studio video (`videorectangle`): keyframes with `enabled`; a box at every keyframe; between an enabled
keyframe and the next one it is interpolated; after a keyframe with `enabled: false` the object is absent
until the next keyframe; after the last enabled keyframe it stays until the end of the clip.

Both become `Keyframe`s here (frames 0-based; LS frames are 1-based and shifted by the importer), with
`visible_after` meaning "interpolate towards the next keyframe / hold after the last one".
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Keyframe:
    frame: int
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 (any unit; the importer normalises)
    present: bool = True  # False: CVAT `outside` (no box at this frame)
    visible_after: bool = True  # False: LS `enabled: false` / CVAT `outside`: absent until the next keyframe
    occluded: bool = False


@dataclass(frozen=True)
class TrackBox:
    box: tuple[float, float, float, float]
    occluded: bool
    keyframe: bool


def box_at(keys: Sequence[Keyframe], frame: int, last_frame: int) -> TrackBox | None:
    """The track's box at `frame` (keys sorted by frame), or None when the object is not in that frame."""
    if not keys or frame > last_frame:
        return None
    frames = [k.frame for k in keys]
    i = bisect.bisect_right(frames, frame) - 1
    if i < 0:
        return None
    k = keys[i]
    if k.frame == frame:
        return TrackBox(k.box, k.occluded, True) if k.present else None
    if not (k.present and k.visible_after):
        return None
    if i + 1 == len(keys):
        return TrackBox(k.box, k.occluded, False)
    n = keys[i + 1]
    t = (frame - k.frame) / (n.frame - k.frame)
    box = tuple(a + (b - a) * t for a, b in zip(k.box, n.box, strict=True))
    return TrackBox((box[0], box[1], box[2], box[3]), k.occluded, False)
