"""CVAT for video export -> import gives back the same boxes, frame by frame (gaps, re-entries, curved motion)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gridwatch.models.datasets import build
from gridwatch.models.datasets.clips import FrameSampler
from gridwatch.models.datasets.cvat import boxes_at, import_cvat_video, parse_cvat_video
from gridwatch.models.datasets.cvat_export import TrackedBox, write_cvat_video
from gridwatch.models.datasets.records import DatasetError
from tests.models.datasets.fixtures import H, W, square_x, write_clip

FRAMES = 60


def tracks() -> list[TrackedBox]:
    """`car` moves right then stops (frames 0-59); `person` walks a curve on frames 5-19, is gone 20-29, comes back
    standing still on 30-44 and leaves before the clip ends; `bin` is only in frame 59."""
    out = [TrackedBox(f, "car-1", "car", (square_x(f), 50.0, square_x(f) + 20.0, 70.0)) for f in range(FRAMES)]
    curve = [TrackedBox(f, "p-7", "person", (5.0 + f * 3, 10.0 + 0.2 * f * f, 15.0 + f * 3, 40.0 + 0.2 * f * f))
             for f in range(5, 20)]
    back = [TrackedBox(f, "p-7", "person", (100.0, 20.5, 112.25, 50.0)) for f in range(30, 45)]
    return out + curve + back + [TrackedBox(59, "bin-2", "garbage_bin", (140.0, 90.0, 155.0, 118.0))]


def by_frame(items: list[TrackedBox]) -> dict[int, list[tuple[str, tuple[float, ...]]]]:
    out: dict[int, list[tuple[str, tuple[float, ...]]]] = {f: [] for f in range(FRAMES)}
    for b in items:
        out[b.frame].append((b.label, (b.box[0] / W, b.box[1] / H, b.box[2] / W, b.box[3] / H)))
    return {f: sorted(v) for f, v in out.items()}


def imported(xml: Path) -> dict[int, list[tuple[str, tuple[float, ...]]]]:
    task = parse_cvat_video(xml)
    return {f: sorted((b.label, (b.x1, b.y1, b.x2, b.y2)) for b in boxes_at(task, f, False)) for f in range(FRAMES)}


def assert_same(got: dict[int, list[tuple[str, tuple[float, ...]]]],
                want: dict[int, list[tuple[str, tuple[float, ...]]]], tol_px: float) -> None:
    for f in range(FRAMES):
        assert [label for label, _ in got[f]] == [label for label, _ in want[f]], f"frame {f}"
        for (_, g), (_, w) in zip(got[f], want[f], strict=True):
            assert g == pytest.approx(w, abs=tol_px / min(W, H)), f"frame {f}"


def test_every_frame_comes_back_with_the_same_boxes(tmp_path: Path) -> None:
    xml = write_cvat_video(tmp_path / "clip.xml", tracks(), (W, H), FRAMES, "clip.avi")
    task = parse_cvat_video(xml)
    assert (task.size, task.frames, task.start_frame, task.source) == ((W, H), FRAMES, 0, "clip.avi")
    assert sorted(t.label for t in task.tracks) == ["car", "garbage_bin", "person"]
    assert_same(imported(xml), by_frame(tracks()), tol_px=0.006)  # coordinates are written to 0.01 px


def test_keyframes_are_thinned_to_the_tolerance_and_still_round_trip(tmp_path: Path) -> None:
    every = parse_cvat_video(write_cvat_video(tmp_path / "all.xml", tracks(), (W, H), FRAMES, "clip.avi"))
    xml = write_cvat_video(tmp_path / "thin.xml", tracks(), (W, H), FRAMES, "clip.avi", tolerance_px=1.0)
    thin = parse_cvat_video(xml)
    exact = {t.label: len(t.keys) for t in every.tracks}
    shapes = {t.label: len(t.keys) for t in thin.tracks}
    assert shapes["car"] == exact["car"] == 3  # linear to frame 40, then still: start, the corner, the last frame
    # the curve needs a shape a frame when exact (15, + outside, + 2 standing, + outside), fewer within 1 px
    assert exact["person"] == 19 and shapes["person"] < 12
    assert_same(imported(xml), by_frame(tracks()), tol_px=1.01)


def test_the_import_cuts_the_frames_with_their_boxes(tmp_path: Path) -> None:
    write_clip(tmp_path / "clip.avi", FRAMES)
    xml = write_cvat_video(tmp_path / "clip.xml", tracks(), (W, H), FRAMES, "clip.avi", tolerance_px=0.5)
    samples = import_cvat_video(xml, "cv", FrameSampler(every=5, min_diff=0))
    want = by_frame(tracks())
    assert [int(s.key.rsplit("_f", 1)[1]) for s in samples] == list(range(0, FRAMES, 5))
    for s in samples:
        got = sorted((b.label, (b.x1, b.y1, b.x2, b.y2)) for b in s.boxes)
        frame = int(s.key.rsplit("_f", 1)[1])
        assert [label for label, _ in got] == [label for label, _ in want[frame]]
        for (_, g), (_, w) in zip(got, want[frame], strict=True):
            assert g == pytest.approx(w, abs=0.51 / min(W, H))


def test_two_boxes_of_one_track_in_a_frame_are_refused(tmp_path: Path) -> None:
    twice = [TrackedBox(3, "a", "car", (1, 1, 5, 5)), TrackedBox(3, "a", "car", (2, 2, 6, 6))]
    with pytest.raises(DatasetError, match="two boxes in frame 3"):
        write_cvat_video(tmp_path / "x.xml", twice, (W, H), FRAMES, "clip.avi")
    with pytest.raises(DatasetError, match="outside the clip"):
        write_cvat_video(tmp_path / "x.xml", [TrackedBox(FRAMES, "a", "car", (1, 1, 5, 5))], (W, H), FRAMES, "c")


def test_a_folder_of_tasks_is_one_source_split_by_clip(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for i in range(4):
        write_clip(tasks / f"street{i}.avi", FRAMES)
        write_cvat_video(tasks / f"street{i}.xml", tracks(), (W, H), FRAMES, f"street{i}.avi", tolerance_px=1.0)
    recipe = {"classes": ["car", "person", "garbage_bin"], "seed": 3, "val_fraction": 0.25,
              "sources": [{"name": "cvat", "type": "cvat_video", "path": "tasks", "every": 10, "min_diff": 0,
                           "map": {"car": "car", "person": "person", "garbage_bin": "garbage_bin"}}]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    src = build(tmp_path / "recipe.yaml", tmp_path / "out").report["sources"]["cvat"]
    assert src["groups"] == {"train": 3, "val": 1} and src["images"] == {"train": 18, "val": 6}
    val = sorted(p.stem for p in (tmp_path / "out" / "images" / "val").iterdir())
    assert len({stem.rsplit("_f", 1)[0] for stem in val}) == 1  # one whole clip


def test_a_folder_without_tasks_or_with_one_video_for_all_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    source = {"name": "cvat", "type": "cvat_video", "path": "tasks", "map": {"car": "car"}}
    recipe = {"classes": ["car"], "sources": [source]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"holds no \*\.xml"):
        build(tmp_path / "recipe.yaml", tmp_path / "out")
    write_cvat_video(tmp_path / "tasks" / "a.xml", tracks(), (W, H), FRAMES, "a.avi")
    source["video"] = "a.avi"
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    with pytest.raises(DatasetError, match="drop `video:`"):
        build(tmp_path / "recipe.yaml", tmp_path / "out")
