"""Tracking stage: ByteTrack (from the `trackers` package), one tracker per class group.

ByteTrack associates boxes by overlap regardless of class. A bag that is put down inside its owner's box would
then inherit the person's track; one tracker per class avoids that. Classes a model confuses with each other
(car / truck / bus) form one group instead: one tracker, and overlapping boxes of the group are merged first
(class-agnostic NMS), so one vehicle is one track. Global ids stay unique because each (group, local id) pair
gets its own id from one counter. The stage never mutates its input: it returns a new
`Detections` with `tracker_id` set (untracked rows dropped). Id maps are pruned when a track has been gone for
longer than the tracker keeps it, so memory stays flat over months.

Lost tracks are kept for `TrackerConfig.lost_track_s` seconds of capture time at any analysis rate. The
`trackers` library takes its `lost_track_buffer` in frames *of a 30 fps video*, whatever `frame_rate` says: when
`update` gets timestamps (always, here) it keeps a lost track for `lost_track_buffer / 30` seconds, and without
timestamps for `lost_track_buffer * frame_rate / 30` frames, i.e. the same time. So the buffer is the configured
seconds times 30, not times the analysis rate (which at 2 fps gave 0.2 s, less than one frame gap: every object
was a new track on every frame and nothing ever dwelt long enough to be reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker
from trackers.utils.iou import BIoU

from gridwatch.edge.config import TrackerConfig

LIBRARY_BUFFER_FPS = 30.0
"""The frame rate in which `trackers.ByteTrackTracker(lost_track_buffer=...)` counts, whatever its `frame_rate`."""

BUFFER_BOX_SIZES_PER_S = 0.6
"""Association slack per second of frame gap; see `association_buffer`."""


def lost_track_buffer(lost_track_s: float) -> int:
    """ByteTrack's `lost_track_buffer` that keeps a lost track at least `lost_track_s` seconds.

    One extra 1/30 s absorbs the rounding of summed frame gaps (fifteen 0.2 s gaps add up to 3.0000000000000004 s),
    so a track seen again exactly `lost_track_s` after it was lost keeps its id."""
    return math.floor(lost_track_s * LIBRARY_BUFFER_FPS + 1e-6) + 1


@dataclass
class MultiClassTracker:
    config: TrackerConfig = field(default_factory=TrackerConfig)
    frame_rate: float = 5.0
    _trackers: dict[str, ByteTrackTracker] = field(default_factory=dict)
    _ids: dict[tuple[str, int], int] = field(default_factory=dict)
    _last_seen: dict[tuple[str, int], float] = field(default_factory=dict)
    _next_id: int = 1

    def group_of(self, class_name: str) -> str:
        for group in self.config.groups:
            if class_name in group:
                return group[0]
        return class_name

    def update(self, detections: sv.Detections, ts: float) -> sv.Detections:
        names = np.asarray(detections.data.get("class_name", np.array([], dtype=str)))
        groups = np.array([self.group_of(str(n)) for n in names], dtype=object)
        present = set(groups.tolist()) if len(detections) else set()
        parts: list[sv.Detections] = []
        for cls in sorted(present | set(self._trackers)):
            subset = self._group_subset(detections, groups == cls) if cls in present else sv.Detections.empty()
            tracked = self._tracker(cls).update(subset, timestamp=ts)
            ids = tracked.tracker_id if tracked.tracker_id is not None else np.full(len(tracked), -1)
            kept = self._subset(tracked, ids >= 0)
            if len(kept):
                parts.append(self._globalise(cls, kept, ts))
        self._prune(ts)
        if not parts:
            empty = sv.Detections.empty()
            empty.tracker_id = np.array([], dtype=int)
            empty.data["class_name"] = np.array([], dtype=str)
            return empty
        return sv.Detections.merge(parts)

    @staticmethod
    def _subset(detections: sv.Detections, mask: np.ndarray) -> sv.Detections:
        out = detections[mask]
        assert isinstance(out, sv.Detections)
        return out

    def _group_subset(self, detections: sv.Detections, mask: np.ndarray) -> sv.Detections:
        subset = self._subset(detections, mask)
        if len(subset) < 2 or subset.confidence is None:
            return subset
        keep = _nms_keep(subset.xyxy, subset.confidence, self.config.group_nms_iou)
        return self._subset(subset, keep)

    def _tracker(self, cls: str) -> ByteTrackTracker:
        if cls not in self._trackers:
            c = self.config
            self._trackers[cls] = ByteTrackTracker(
                lost_track_buffer=lost_track_buffer(c.lost_track_s),
                frame_rate=self.frame_rate,
                track_activation_threshold=c.activation_conf,
                minimum_consecutive_frames=1,
                minimum_iou_threshold=c.min_iou,
                high_conf_det_threshold=c.high_conf,
                iou=BIoU(buffer_ratio=association_buffer(self.frame_rate)),
            )
        return self._trackers[cls]

    def _globalise(self, cls: str, tracked: sv.Detections, ts: float) -> sv.Detections:
        ids = np.empty(len(tracked), dtype=int)
        assert tracked.tracker_id is not None
        for i, local in enumerate(tracked.tracker_id):
            key = (cls, int(local))
            if key not in self._ids:
                self._ids[key] = self._next_id
                self._next_id += 1
            ids[i] = self._ids[key]
            self._last_seen[key] = ts
        out = sv.Detections(
            xyxy=tracked.xyxy.copy(),
            confidence=None if tracked.confidence is None else tracked.confidence.copy(),
            class_id=None if tracked.class_id is None else tracked.class_id.copy(),
            tracker_id=ids,
            data={k: np.asarray(v).copy() for k, v in tracked.data.items()},
        )
        return out

    def _prune(self, ts: float) -> None:
        """Forget (group, local id) pairs the tracker can no longer return: gone longer than it keeps a lost
        track (`lost_track_buffer / 30` s), plus one frame gap and a second of slack."""
        kept_s = lost_track_buffer(self.config.lost_track_s) / LIBRARY_BUFFER_FPS
        horizon = kept_s + 1.0 / self.frame_rate + 1.0
        for key in [k for k, t in self._last_seen.items() if ts - t > horizon]:
            del self._last_seen[key]
            self._ids.pop(key, None)

    def state_size(self) -> int:
        return len(self._ids)


def association_buffer(frame_rate: float) -> float:
    """How far (in box sizes, each side) boxes are widened before matching them to tracks by overlap.

    A walking person moves about 1.5-2 box widths per second; at 1-2 analysed frames per second their boxes on
    consecutive frames no longer overlap, so plain IoU starts a new track on every frame and no person ever
    gets an id (ByteTrack names a track only when it is matched a second time). Widening by
    `BUFFER_BOX_SIZES_PER_S` box sizes per second of frame gap (Buffered IoU, arXiv 2211.14317) keeps such
    tracks at low rates and changes almost nothing at 10 fps (0.06 box sizes).
    """
    return BUFFER_BOX_SIZES_PER_S / frame_rate


def _nms_keep(xyxy: np.ndarray, conf: np.ndarray, iou: float) -> np.ndarray:
    """Boolean mask of boxes kept by greedy class-agnostic NMS (highest confidence first)."""
    order = np.argsort(-conf)
    keep = np.zeros(len(conf), dtype=bool)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    suppressed = np.zeros(len(conf), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        keep[i] = True
        ix = np.clip(np.minimum(xyxy[i, 2], xyxy[:, 2]) - np.maximum(xyxy[i, 0], xyxy[:, 0]), 0, None)
        iy = np.clip(np.minimum(xyxy[i, 3], xyxy[:, 3]) - np.maximum(xyxy[i, 1], xyxy[:, 1]), 0, None)
        inter = ix * iy
        overlap = inter / np.maximum(area[i] + area - inter, 1e-9)
        suppressed |= overlap > iou
    return keep
