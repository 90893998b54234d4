from __future__ import annotations

import numpy as np
import pytest
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


def _ids_with_gap(fps: float, lost_track_s: float, gap_s: float) -> list[int]:
    """Ids of one parked car seen for 2 s, unseen for `gap_s` s (frames still analysed), then seen again."""
    t = MultiClassTracker(TrackerConfig(lost_track_s=lost_track_s), frame_rate=fps)
    ids: list[int] = []
    step = 1.0 / fps
    n_before, n_gap = round(2.0 * fps), round(gap_s * fps)
    for i in range(n_before + n_gap + 3):
        visible = i < n_before or i >= n_before + n_gap
        rows = dets((100, 100, 200, 160, "car", 0.9)) if visible else sv.Detections.empty()
        out = t.update(rows, i * step)
        ids.extend(int(x) for x in out.tracker_id)
    return ids


@pytest.mark.parametrize("fps", [1.0, 2.0, 3.0, 5.0, 10.0])
def test_a_lost_track_keeps_its_id_for_lost_track_s_of_capture_time(fps: float) -> None:
    # Hidden from the frame after its last sighting until lost_track_s after it: the same id comes back.
    gap = 3.0 - 1.0 / fps
    assert len(set(_ids_with_gap(fps, 3.0, gap))) == 1, f"{fps} fps, unseen {3.0:.1f} s"


@pytest.mark.parametrize("fps", [1.0, 2.0, 3.0, 5.0, 10.0])
def test_a_track_gone_longer_than_lost_track_s_is_a_new_track(fps: float) -> None:
    gap = 3.0 + 1.0 / fps  # last seen to seen again: lost_track_s + 2 frame gaps
    assert len(set(_ids_with_gap(fps, 3.0, gap))) == 2


def test_at_2_fps_a_track_missing_one_frame_gap_less_than_lost_track_s_keeps_its_id() -> None:
    ids = _ids_with_gap(2.0, 3.0, 3.0 - 0.5)
    assert ids and len(set(ids)) == 1
    assert len(set(_ids_with_gap(2.0, 3.0, 3.0 + 0.5))) == 2


def test_the_library_keeps_lost_tracks_for_the_configured_seconds() -> None:
    """Pins how `trackers` counts its buffer (30 fps frames); fails loudly if a new version changes that."""
    for fps in (1.0, 2.0, 5.0, 30.0):
        t = MultiClassTracker(TrackerConfig(lost_track_s=3.0), frame_rate=fps)
        t.update(dets((10, 10, 50, 50, "car", 0.9)), 0.0)
        lib = t._trackers["car"]
        assert 3.0 <= lib.maximum_time_without_update <= 3.0 + 1 / 30 + 1e-9
        assert lib.maximum_frames_without_update >= round(3.0 * fps)


def test_a_walker_analysed_at_1_fps_is_one_track() -> None:
    # 25 px wide, 44 px per second: boxes of consecutive frames at 1 fps never overlap.
    t = MultiClassTracker(TrackerConfig(), frame_rate=1.0)
    ids = set()
    for i in range(8):
        x = 100 + 44 * i
        out = t.update(dets((x, 100, x + 25, 170, "person", 0.9)), float(i))
        ids.update(int(v) for v in out.tracker_id)
    assert len(ids) == 1
