"""Pictures: the per-incident snapshot (JPEG) and the annotated frame for the review video.

Drawing lives here, never in `pipelines/`. Snapshots show the incident's box and label on the frame it was
reported on; they are content-addressed (sha256) so central can verify what it received.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import supervision as sv

from gridwatch.pipelines.types import IncidentUpdate
from gridwatch.pipelines.zones import Zone
from gridwatch.wire.events import EvidenceRef

_PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
            (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0)]
_INCIDENT_COLOR = (0, 0, 255)


@dataclass(frozen=True)
class Snapshot:
    jpeg: bytes
    ref: EvidenceRef


def _color(track_id: int) -> tuple[int, int, int]:
    return _PALETTE[track_id % len(_PALETTE)]


def _label(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int]) -> None:
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    y = max(th + 4, y)
    cv2.rectangle(image, (x, y - th - 4), (x + tw + 4, y), color, -1)
    cv2.putText(image, text, (x + 2, y - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)


def draw_zones(image: np.ndarray, zones: tuple[Zone, ...]) -> None:
    overlay = image.copy()
    for zone in zones:
        pts = np.array(zone.polygon, dtype=np.int32)
        cv2.fillPoly(overlay, [pts], (0, 200, 255))
        cv2.polylines(image, [pts], True, (0, 200, 255), 2)
    cv2.addWeighted(overlay, 0.2, image, 0.8, 0, dst=image)
    for zone in zones:
        x, y = np.array(zone.polygon, dtype=np.int32).min(axis=0)
        _label(image, zone.name, int(x), int(y) + 14, (0, 140, 200))


def annotate(
    image: np.ndarray, detections: sv.Detections, zones: tuple[Zone, ...], active: dict[str, IncidentUpdate],
    caption: str = "",
) -> np.ndarray:
    """A new image: zones, tracked boxes with ids, and a red frame + label around each open incident."""
    out = image.copy()
    draw_zones(out, zones)
    names = detections.data.get("class_name")
    for i in range(len(detections)):
        x1, y1, x2, y2 = (int(v) for v in detections.xyxy[i])
        tid = int(detections.tracker_id[i]) if detections.tracker_id is not None else -1
        color = _color(max(tid, 0))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
        name = str(names[i]) if names is not None else "?"
        _label(out, f"#{tid} {name}", x1, y1, color)
    for upd in active.values():
        x1, y1, x2, y2 = (int(v) for v in upd.box)
        cv2.rectangle(out, (x1 - 3, y1 - 3), (x2 + 3, y2 + 3), _INCIDENT_COLOR, 3)
        _label(out, f"{upd.type.upper()} {upd.dwell_s:.0f}s", x1 - 3, y2 + 20, _INCIDENT_COLOR)
    if caption:
        _label(out, caption, 6, 20, (40, 40, 40))
    return out


def snapshot(image: np.ndarray, update: IncidentUpdate, quality: int = 85) -> Snapshot:
    """The frame with the incident boxed and labelled, as JPEG bytes plus its evidence reference."""
    out = image.copy()
    for obj in update.objects:
        x1, y1, x2, y2 = (int(v) for v in obj.box)
        color = _INCIDENT_COLOR if obj.role == "subject" else (255, 160, 0)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
        _label(out, f"{obj.role}: {obj.class_name}", x1, y1, color)
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
