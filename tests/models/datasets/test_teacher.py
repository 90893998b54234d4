"""Teacher boxes (scripted detector): pseudo-labels on clip frames, and filling in classes a photo source lacks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gridwatch.models.datasets.clips import FrameSampler, encode_jpeg
from gridwatch.models.datasets.mapping import parse_class_map
from gridwatch.models.datasets.records import Box, DatasetError, Sample
from gridwatch.models.datasets.teacher import fill_in, manifest_for, pseudo_label, source_classes
from gridwatch.models.fake import FakeDetector
from tests.models.datasets.fixtures import H, W, write_clip

NAMES = ("person", "car", "kite")


def _photo(tmp_path: Path) -> Sample:
    path = tmp_path / "p.jpg"
    cv2.imwrite(str(path), np.zeros((H, W, 3), np.uint8))
    return Sample("cn", "p", "p", path, (W, H), (Box("garbage", 0.1, 0.1, 0.2, 0.2),))


def test_pseudo_labels_are_normalised_per_kept_frame(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.avi")
    fake = FakeDetector.from_boxes([[(16, 12, 48, 36, "car", 0.9)], [], [(0, 0, 320, 240, "person", 0.8)]],
                                   class_names=NAMES)
    samples = pseudo_label(fake, [clip], "t", FrameSampler(every=20, min_diff=0))
    assert [s.key for s in samples] == ["c_f000000", "c_f000020", "c_f000040"]
    assert samples[0].boxes == (Box("car", 0.1, 0.1, 0.3, 0.3),) and samples[1].boxes == ()
    assert samples[2].boxes == (Box("person", 0.0, 0.0, 1.0, 1.0),)  # clipped to the frame
    assert all(s.group == "c" for s in samples)


def test_fill_in_adds_only_classes_the_source_does_not_label(tmp_path: Path) -> None:
    photo = _photo(tmp_path)
    frame = Sample("v", "f", "clip", encode_jpeg(np.zeros((H, W, 3), np.uint8)), (W, H), ())
    fake = FakeDetector.from_boxes([[(16, 12, 48, 36, "person", 0.9), (0, 0, 16, 12, "kite", 0.9)],
                                    [(16, 12, 48, 36, "car", 0.9)]], class_names=NAMES)
    source_map = parse_class_map({"garbage": "garbage", "bin": "ignore"}, "m", ["garbage", "person", "car"])
    teacher_map = parse_class_map({"person": "person", "car": "car", "kite": "garbage"}, "t", ["garbage", "person",
                                                                                                "car"])
    assert source_classes(source_map) == {"garbage"}
    out, added = fill_in(fake, [photo, frame], teacher_map, source_classes(source_map), "cn")
    assert [b.label for b in out[0].boxes] == ["garbage", "person"]  # the teacher's `garbage` (kite) is not added
    assert [b.label for b in out[1].boxes] == ["car"] and added == {"person": 1, "car": 1}


def test_fill_in_reports_teacher_classes_its_map_does_not_name(tmp_path: Path) -> None:
    fake = FakeDetector.from_boxes([[(16, 12, 48, 36, "kite", 0.9)]], class_names=NAMES)
    teacher_map = parse_class_map({"person": "person"}, "sources.0.teacher.map", ["person"])
    with pytest.raises(DatasetError, match=r"source 'cn\.teacher': unmapped classes 'kite' \(1 box\)"):
        fill_in(fake, [_photo(tmp_path)], teacher_map, set(), "cn")


def test_manifest_by_shipped_name_or_path(tmp_path: Path) -> None:
    assert manifest_for("yolox_nano_coco80", tmp_path).name == "yolox_nano_coco80.json"  # type: ignore[union-attr]
    assert manifest_for(None, tmp_path) is None
    with pytest.raises(DatasetError, match="not a shipped manifest"):
        manifest_for("nope", tmp_path)
