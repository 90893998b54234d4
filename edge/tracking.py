"""Tracking stage: ByteTrack (from the `trackers` package), one tracker per class group.

ByteTrack associates boxes by overlap regardless of class. A bag that is put down inside its owner's box would
then inherit the person's track; one tracker per class avoids that. Classes a model confuses with each other
(car / truck / bus) form one group instead: one tracker, and overlapping boxes of the group are merged first
(class-agnostic NMS), so one vehicle is one track. Global ids stay unique because each (group, local id) pair
gets its own id from one counter. The stage never mutates its input: it returns a new
`Detections` with `tracker_id` set (untracked rows dropped). Id maps are pruned when a track has been gone for
longer than the tracker keeps it, so memory stays flat over months.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from gridwatch.edge.config import TrackerConfig


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
                lost_track_buffer=max(1, round(c.lost_track_s * self.frame_rate)),
                frame_rate=self.frame_rate,
                track_activation_threshold=c.activation_conf,
                minimum_consecutive_frames=1,
                minimum_iou_threshold=c.min_iou,
                high_conf_det_threshold=c.high_conf,
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
        horizon = 2 * self.config.lost_track_s + 1.0
        for key in [k for k, t in self._last_seen.items() if ts - t > horizon]:
            del self._last_seen[key]
            self._ids.pop(key, None)

    def state_size(self) -> int:
        return len(self._ids)


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
