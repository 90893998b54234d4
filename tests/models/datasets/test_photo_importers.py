"""YOLO folders and COCO JSON: boxes, class names, split folders, source-photo groups."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridwatch.models.datasets.coco import import_coco
from gridwatch.models.datasets.groups import source_photo
from gridwatch.models.datasets.records import DatasetError
from gridwatch.models.datasets.yolo import import_yolo
from tests.models.datasets.fixtures import H, W, coco_json, yolo_folder


def test_roboflow_copies_share_their_source_photo() -> None:
    assert source_photo("000123_jpg.rf.44380ef00dc39c1ca99f861b0440fd98.jpg") == "000123"
    assert source_photo("a/b/IMG_7_png.rf.0123abcd99.png") == "IMG_7"
    assert source_photo("street_1.jpg") == "street_1"
    assert source_photo("x.rf.notahash.jpg") == "x.rf.notahash"


def test_coco_boxes_are_normalised_and_grouped_by_source_photo(tmp_path: Path) -> None:
    samples = import_coco(coco_json(tmp_path), "c")
    assert [s.group for s in samples] == ["000007", "000007", "street_1"]
    bag, bin_ = samples[0].boxes
    assert (bag.label, bag.x1, bag.y1, bag.x2, bag.y2) == ("bag", 0.1, 0.1, 0.3, 0.3)
    assert (bin_.x2, bin_.y2) == (1.0, 1.0)
    assert samples[1].boxes == ()  # background image kept
    edge = samples[2].boxes[0]  # a box running off the image is clipped to it
    assert edge.x2 == 1.0 and edge.y2 == 1.0 and edge.x1 == pytest.approx(150 / W)


def test_coco_missing_image_names_the_images_field(tmp_path: Path) -> None:
    path = coco_json(tmp_path)
    (tmp_path / "images" / "street_1.jpg").unlink()
    with pytest.raises(DatasetError, match=r"street_1\.jpg.*set `images:`"):
        import_coco(path, "c")


def test_yolo_split_folders_keep_their_split_and_names(tmp_path: Path) -> None:
    root = yolo_folder(tmp_path / "y", {"train": ["000001_jpg.rf.aaaaaaaa11"], "valid": ["000002_jpg.rf.bbbbbbbb22"]},
                       ["garbage", "bin"], line="1 0.5 0.5 0.5 0.25")
    samples = import_yolo(root, "y")
    assert [(s.split, s.group, s.size) for s in samples] == [("train", "000001", (W, H)), ("val", "000002", (W, H))]
    box = samples[0].boxes[0]
    assert (box.label, box.x1, box.y1, box.x2, box.y2) == ("bin", 0.25, 0.375, 0.75, 0.625)


def test_yolo_class_id_beyond_the_names_is_an_error(tmp_path: Path) -> None:
    root = yolo_folder(tmp_path / "y", {"train": ["a"]}, ["garbage"], line="3 0.5 0.5 0.1 0.1")
    with pytest.raises(DatasetError, match="class id 3 is not in the class names"):
        import_yolo(root, "y")
