"""CVAT for video and Label Studio video imports on a generated clip: interpolation, outside, disabled keyframes,
occluded boxes, near-duplicate frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridwatch.models.datasets.clips import FrameSampler, sample_frames
from gridwatch.models.datasets.cvat import import_cvat_video, parse_cvat_video
from gridwatch.models.datasets.labelstudio import find_video, import_label_studio
from gridwatch.models.datasets.records import DatasetError, Sample
from tests.models.datasets.fixtures import H, W, cvat_xml, label_studio_json, write_clip


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.avi")


def _by_frame(samples: list[Sample]) -> dict[int, Sample]:
    return {int(s.key.rsplit("_f", 1)[1]): s for s in samples}


def _x1_px(sample: Sample, label: str) -> list[float]:
    return [round(b.x1 * W, 3) for b in sample.boxes if b.label == label]


def test_near_duplicate_frames_are_skipped(clip: Path) -> None:
    sampler = FrameSampler(every=2, min_diff=0.5)
    kept = [i for i, _ in sample_frames(clip, sampler)]
    # the square moves until frame 40: every 2nd frame differs; after it, all frames look alike: one kept
    assert kept == list(range(0, 41, 2))
    assert sampler.skipped_duplicates == 9  # frames 42..58
    assert [i for i, _ in sample_frames(clip, FrameSampler(every=2, min_diff=0))] == list(range(0, 60, 2))


def test_cvat_track_interpolates_hides_outside_and_holds_the_last_shape(clip: Path, tmp_path: Path) -> None:
    xml = cvat_xml(tmp_path / "clip.xml")
    samples = _by_frame(import_cvat_video(xml, "cv", FrameSampler(every=1, min_diff=0)))
    assert len(samples) == 60 and all(s.group == "clip" and s.size == (W, H) for s in samples.values())
    assert _x1_px(samples[0], "car") == [10] and _x1_px(samples[5], "car") == [20]  # halfway 10 -> 30
    assert _x1_px(samples[15], "car") == [pytest.approx(40)]  # interpolated towards the outside shape
    assert _x1_px(samples[20], "car") == [] and _x1_px(samples[29], "car") == []  # outside until frame 30
    assert _x1_px(samples[30], "car") == [70] and _x1_px(samples[59], "car") == [70]  # held to the end
    assert _x1_px(samples[4], "tree") == [100] and _x1_px(samples[5], "tree") == []


def test_cvat_occluded_boxes_are_kept_or_dropped_on_request(clip: Path, tmp_path: Path) -> None:
    xml = cvat_xml(tmp_path / "clip.xml")
    dropped = _by_frame(import_cvat_video(xml, "cv", FrameSampler(every=10, min_diff=0), drop_occluded=True))
    assert _x1_px(dropped[30], "car") == [] and _x1_px(dropped[10], "car") == [30]
    assert parse_cvat_video(xml).skipped_shapes == {"polygon": 1}


def test_cvat_without_a_video_names_the_fix(tmp_path: Path) -> None:
    xml = cvat_xml(tmp_path / "task.xml", source="missing.mp4")
    with pytest.raises(DatasetError, match="set `video:`"):
        import_cvat_video(xml, "cv", FrameSampler())


def test_label_studio_sequence_interpolates_and_disabled_keyframe_ends_the_track(clip: Path, tmp_path: Path) -> None:
    path = label_studio_json(tmp_path / "ls.json")
    samples = _by_frame(import_label_studio(path, "ls", FrameSampler(every=1, min_diff=0), tmp_path))
    # LS frame 1 = video frame 0; frames 1 -> 11 interpolate x 10 -> 30
    assert _x1_px(samples[0], "Person") == [10] and _x1_px(samples[5], "Person") == [20]
    assert _x1_px(samples[10], "Person") == [30]  # the disabled keyframe still has its box
    assert _x1_px(samples[11], "Person") == [] and _x1_px(samples[29], "Person") == []
    assert _x1_px(samples[30], "Person") == [70] and _x1_px(samples[59], "Person") == [70]


def test_label_studio_video_is_found_without_the_upload_prefix(clip: Path, tmp_path: Path) -> None:
    assert find_video("/data/upload/1/3f2a9c1d-clip.avi", tmp_path) == clip
    with pytest.raises(DatasetError, match="set `videos:`"):
        find_video("/data/upload/1/other.mp4", tmp_path)
