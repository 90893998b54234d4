from __future__ import annotations

import numpy as np
import supervision as sv

from gridwatch.edge.config import TrackerConfig
from gridwatch.edge.tracking import MultiClassTracker


def dets(*rows: tuple[float, float, float, float, str, float]) -> sv.Detections:
    xyxy = np.array([r[:4] for r in rows], dtype=np.float32).reshape(-1, 4)
    names = np.array([r[4] for r in rows])
    return sv.Detections(xyxy=xyxy, confidence=np.array([r[5] for r in rows], dtype=np.float32),
                         class_id=np.zeros(len(rows), dtype=int), data={"class_name": names})


def test_bag_put_down_inside_its_owner_gets_its_own_track() -> None:
    t = MultiClassTracker(TrackerConfig(), frame_rate=10)
    ids: dict[str, set[int]] = {"person": set(), "litter": set()}
    for i in range(20):
        rows = [(100, 50, 140, 200, "person", 0.9)]
        if i >= 5:
            rows.append((105, 170, 135, 200, "litter", 0.8))  # overlaps the person's box
        out = t.update(dets(*rows), i / 10)
        for tid, name in zip(out.tracker_id, out.data["class_name"], strict=True):
            ids[str(name)].add(int(tid))
    assert len(ids["person"]) == 1 and len(ids["litter"]) == 1
    assert ids["person"].isdisjoint(ids["litter"])


def test_input_is_not_mutated_and_ids_are_stable() -> None:
    t = MultiClassTracker(TrackerConfig(), frame_rate=10)
    seen = set()
    for i in range(10):
        d = dets((10 + i, 10, 50 + i, 50, "car", 0.9))
        out = t.update(d, i / 10)
        assert d.tracker_id is None
        seen.update(int(x) for x in out.tracker_id)
    assert len(seen) == 1


def test_id_maps_are_pruned_when_tracks_are_gone() -> None:
    t = MultiClassTracker(TrackerConfig(lost_track_s=1.0), frame_rate=10)
    for i in range(600):  # a new car every 2 s for a minute, each visible for ~1 s
        k = i // 20
        x = 30 * (k % 15)
        rows = [(x, 10, x + 25, 40, "car", 0.9)] if i % 20 < 10 else []
        t.update(dets(*rows) if rows else sv.Detections.empty(), i / 10)
    assert t.state_size() <= 3


def test_a_car_the_model_also_calls_a_truck_is_one_track() -> None:
    t = MultiClassTracker(TrackerConfig(), frame_rate=10)
    ids = set()
    for i in range(15):
        rows = [(100, 100, 200, 160, "car", 0.8), (102, 101, 199, 161, "truck", 0.45)]
        if i % 3 == 0:
            rows = rows[::-1]
        out = t.update(dets(*rows), i / 10)
        assert len(out) <= 1
        ids.update(int(x) for x in out.tracker_id)
    assert len(ids) == 1


def test_weakly_scored_classes_still_get_tracks() -> None:
    t = MultiClassTracker(TrackerConfig(), frame_rate=10)
    out = [t.update(dets((10, 10, 300, 80, "wire", 0.33)), i / 10) for i in range(5)]
    assert len(out[-1]) == 1 and int(out[-1].tracker_id[0]) > 0
