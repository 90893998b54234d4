"""Pictures: the per-incident snapshot (JPEG) and the annotated frame for the review video.

Drawing lives here, never in `pipelines/`. Snapshots show the incident's box and label on the frame it was
reported on; they are content-addressed (sha256) so central can verify what it received.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv

from gridwatch.pipelines.types import REGION_CLASS, IncidentUpdate
from gridwatch.pipelines.zones import Zone
from gridwatch.wire.events import EvidenceRef

_INCIDENT_COLOR = (0, 0, 255)  # BGR, for the snapshot drawn with OpenCV


@dataclass(frozen=True)
class Snapshot:
    jpeg: bytes
    ref: EvidenceRef


def _label(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int]) -> None:
    """`text` on a filled box above (x, y), moved left and down as far as needed to stay whole in the picture."""
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    y = max(th + 4, y)
    x = max(0, min(x, image.shape[1] - tw - 4))
    cv2.rectangle(image, (x, y - th - 4), (x + tw + 4, y), color, -1)
    cv2.putText(image, text, (x + 2, y - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)


# Review-video drawing, with supervision's annotators. Colour 0 is reserved for open incidents and colour 1 for
# scene-change regions; tracks cycle through the rest by tracker id so one object keeps its colour. All labels
# (tracks, regions and incidents) go through one LabelAnnotator call with smart positioning, which moves
# overlapping labels apart.
_INCIDENT = sv.Color(r=255, g=0, b=0)
_REGION = sv.Color(r=255, g=0, b=255)  # scene-change regions: magenta, unlike any track or incident colour
_ZONE = sv.Color(r=255, g=200, b=0)
_PALETTE = sv.ColorPalette([_INCIDENT, _REGION, *(c for c in sv.ColorPalette.DEFAULT.colors
                                                  if not (c.r > 200 and c.g < 100))])
_REGION_INDEX, _FIRST_TRACK_INDEX = 1, 2
_TRACK_BOXES = sv.BoxAnnotator(color=_PALETTE, thickness=2)
_INCIDENT_BOXES = sv.BoxAnnotator(color=_PALETTE, thickness=4)
_REGION_BOXES = sv.BoxCornerAnnotator(color=_REGION, thickness=2, corner_length=8,
                                     color_lookup=sv.ColorLookup.INDEX)
_LABELS = sv.LabelAnnotator(color=_PALETTE, text_scale=0.45, text_padding=4, smart_position=True)
REGION_LABEL = "region"
"""How a tracked scene-change region (class `unknown_object`) is labelled in the review video: `#id region`."""
_DASH_PX = 6


def _boxes(xyxy: Sequence[Sequence[float]] | np.ndarray) -> sv.Detections:
    """Bare boxes (no class, no id): what the label annotator needs for positions."""
    if len(xyxy) == 0:
        return sv.Detections.empty()
    return sv.Detections(xyxy=np.asarray(xyxy, dtype=np.float32))


def _text(image: np.ndarray, text: str, x: int, y: int, fg: sv.Color, bg: sv.Color) -> np.ndarray:
    """`text` on a filled box whose top-left corner is (x, y) (supervision anchors text at its centre)."""
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    centre = sv.Point(x + tw // 2 + 3, y + th // 2 + 3)
    return sv.draw_text(image, text, centre, text_color=fg, text_scale=0.45, text_padding=3, background_color=bg)


def _dashed_boxes(image: np.ndarray, xyxy: np.ndarray, color: sv.Color, thickness: int = 2) -> np.ndarray:
    """Dashed rectangles (in place): a tracked region is told apart from a detector's solid box at a glance."""
    bgr = color.as_bgr()
    for x1, y1, x2, y2 in np.asarray(xyxy, dtype=np.float64):
        for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
            steps = max(1, int(np.hypot(b[0] - a[0], b[1] - a[1]) // _DASH_PX))
            pts = np.linspace(a, b, steps + 1).round().astype(np.int64)
            for i in range(0, steps, 2):  # every other step is a gap
                cv2.line(image, (int(pts[i][0]), int(pts[i][1])), (int(pts[i + 1][0]), int(pts[i + 1][1])), bgr,
                         thickness)
    return image


def annotate(
    image: np.ndarray, tracks: sv.Detections, zones: Sequence[Zone], incidents: Sequence[IncidentUpdate],
    caption: str = "", now_ts: float | None = None, regions: sv.Detections | None = None,
) -> np.ndarray:
    """A new image: zones, tracked boxes labelled `#id class` (plus `(4s old)` on a slower detector's persisted
    box), a thick red box + `TYPE dwell` per open incident.

    Scene-change regions are magenta: the stage's regions on this frame (`regions`) as box corners, and tracked
    regions (class `unknown_object`, what the rules see) as a dashed box labelled `#id region`.
    `now_ts`: the frame's time, so an incident's dwell counts on between its (periodic) updates."""
    out = image.copy()
    for zone in zones:
        poly = np.asarray(zone.polygon, dtype=np.int64)
        out = sv.draw_filled_polygon(out, poly, _ZONE, opacity=0.2)
        out = sv.draw_polygon(out, poly, _ZONE, thickness=2)
        x, y = poly.min(axis=0)  # clamped: a ground zone can extend beyond the picture
        h, w = out.shape[:2]
        out = _text(out, zone.name, min(max(int(x), 0), w - 60), min(max(int(y), 24), h - 20), sv.Color.BLACK, _ZONE)
    n_palette = len(_PALETTE.colors)
    names = tracks.data.get("class_name")
    is_region = np.array([names is not None and str(names[i]) == REGION_CLASS for i in range(len(tracks))], bool)
    ids = tracks.tracker_id if tracks.tracker_id is not None else np.full(len(tracks), -1)
    ages = tracks.data.get("detection_age_s")  # a slower detector's box from an earlier run: say how old
    track_labels = [f"#{int(ids[i])} {REGION_LABEL if is_region[i] else (names[i] if names is not None else '?')}"
                    + _age(ages, i) for i in range(len(tracks))]
    track_colors = np.array([_REGION_INDEX if is_region[i]
                             else _FIRST_TRACK_INDEX + max(int(ids[i]), 0) % (n_palette - _FIRST_TRACK_INDEX)
                             for i in range(len(tracks))], dtype=np.int64)
    inc = _boxes([u.box for u in incidents])
    inc_labels = [f"{u.type.upper()} {u.dwell_s + max(0.0, (now_ts or u.ts) - u.ts):.0f}s" for u in incidents]
    inc_colors = np.zeros(len(incidents), dtype=np.int64)
    if regions is not None and len(regions):
        out = _REGION_BOXES.annotate(out, _boxes(regions.xyxy))
    if (~is_region).any():
        solid = tracks[~is_region]
        assert isinstance(solid, sv.Detections)
        out = _TRACK_BOXES.annotate(out, solid, custom_color_lookup=track_colors[~is_region])
    if len(inc):
        out = _INCIDENT_BOXES.annotate(out, inc, custom_color_lookup=inc_colors)
    if is_region.any():  # over an incident's red box too: a case found by the scene-change path shows it
        out = _dashed_boxes(out, tracks.xyxy[is_region], _REGION)
    everything = sv.Detections.merge([_boxes(tracks.xyxy), inc])
    if len(everything):
        out = _LABELS.annotate(out, everything, labels=track_labels + inc_labels,
                               custom_color_lookup=np.concatenate([track_colors, inc_colors]))
    if caption:
        out = _text(out, caption, 4, 4, sv.Color.WHITE, sv.Color(r=40, g=40, b=40))
    return out


def _age(ages: np.ndarray | list[Any] | None, i: int) -> str:
    age = float(ages[i]) if ages is not None else float("nan")
    return f" ({age:.0f}s old)" if age >= 0.5 else ""


def snapshot(image: np.ndarray, update: IncidentUpdate, quality: int = 85) -> Snapshot:
    """The frame with the incident boxed and labelled, as JPEG bytes plus its evidence reference."""
    out = image.copy()
    for obj in update.objects:
        x1, y1, x2, y2 = (int(v) for v in obj.box)
        color = _INCIDENT_COLOR if obj.role == "subject" else (255, 160, 0)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
        what = REGION_LABEL if obj.class_name == REGION_CLASS else obj.class_name
        _label(out, f"{obj.role}: {what}", x1, y1, color)
    _label(out, f"{update.type} {update.incident_id} dwell {update.dwell_s:.0f}s", 6, 20, _INCIDENT_COLOR)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    data = buf.tobytes()
    ref = EvidenceRef(kind="snapshot", content_type="image/jpeg", sha256=hashlib.sha256(data).hexdigest(),
                      size_bytes=len(data))
    return Snapshot(data, ref)


def save_snapshot(snap: Snapshot, folder: Path, incident_id: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{incident_id}.jpg"
    tmp = path.with_suffix(".jpg.tmp")
    tmp.write_bytes(snap.jpeg)
    tmp.replace(path)
    return path
