"""On the real data (read-only, never copied into the repo): the garbage_cn_street folder, and a mixed recipe with
YOLOX-Nano pseudo-labels on a real clip plus synthetic scenes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gridwatch.models.datasets import build
from gridwatch.models.datasets.clips import FrameSampler
from gridwatch.models.datasets.groups import source_photo
from gridwatch.models.datasets.records import Box
from gridwatch.models.datasets.teacher import load_teacher, manifest_for, pseudo_label

pytestmark = pytest.mark.realdata

CN_CLASSES = ["garbage", "garbage_bin", "overflow"]


def _cn_recipe(tmp_path: Path, shared: Path, split: str) -> Path:
    path = tmp_path / f"cn_{split}.yaml"
    path.write_text(yaml.safe_dump({"classes": CN_CLASSES, "seed": 0, "val_fraction": 0.3, "sources": [
        {"name": "cn", "type": "yolo", "path": str(shared / "garbage_cn_street"), "split": split,
         "map": {c: c for c in CN_CLASSES}}]}))
    return path


def test_garbage_cn_street_counts_and_no_source_photo_on_both_sides(tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "cn"
    report = build(_cn_recipe(tmp_path, shared_data, "group"), out).report
    c = report["counts"]
    assert c["train"]["images"] + c["val"]["images"] == 1440
    totals = {k: c["train"]["boxes"][k] + c["val"]["boxes"][k] for k in CN_CLASSES}
    assert totals == {"garbage": 826, "garbage_bin": 1536, "overflow": 1542}  # the folder's README
    assert 0.27 <= c["val"]["images"] / 1440 <= 0.33
    photos = {s: {source_photo(p.name.split("__", 1)[1].split("_", 1)[1]) for p in (out / "images" / s).iterdir()}
              for s in ("train", "val")}
    assert len(photos["train"]) + len(photos["val"]) == 1440 and not photos["train"] & photos["val"]


def test_garbage_cn_street_keeps_its_own_split(tmp_path: Path, shared_data: Path) -> None:
    c = build(_cn_recipe(tmp_path, shared_data, "keep"), tmp_path / "keep").report["counts"]
    assert (c["train"]["images"], c["val"]["images"]) == (1000, 440)
    assert c["val"]["boxes"] == {"garbage": 265, "garbage_bin": 497, "overflow": 459}


def test_yolox_pseudo_labels_find_the_kerb_cars(shared_data: Path) -> None:
    detector = load_teacher(shared_data / "models" / "yolox_nano.onnx", manifest_for("yolox_nano_coco80", Path()),
                            conf=0.4)
    clip = shared_data / "videos" / "arlington_crystal_dr_curb_parked.avi"
    samples = pseudo_label(detector, [clip], "t", FrameSampler(every=40, min_diff=0))
    assert [s.key for s in samples] == [f"{clip.stem}_f{i:06d}" for i in (0, 40, 80)]
    cars = [b for s in samples for b in s.boxes if b.label == "car"]
    assert len(cars) >= 3 * 4  # the 4 annotated kerb cars in every frame at least
    assert all(isinstance(b, Box) and 0 <= b.x1 < b.x2 <= 1 and 0 <= b.y1 < b.y2 <= 1 for b in cars)


def test_recipe_mixes_real_photos_synthetic_scenes_and_teacher_labels(tmp_path: Path, shared_data: Path) -> None:
    recipe = tmp_path / "mix.yaml"
    recipe.write_text(yaml.safe_dump({
        "classes": ["garbage", "garbage_bin", "overflow", "person", "car"], "seed": 2, "val_fraction": 0.25,
        "sources": [
            {"name": "cn", "type": "yolo", "path": str(shared_data / "garbage_cn_street"), "split": "keep",
             "map": {c: c for c in CN_CLASSES}, "cap": 40,
             "teacher": {"model": str(shared_data / "models" / "yolox_nano.onnx"), "manifest": "yolox_nano_coco80",
                         "map": {"person": "person", "car": "car", "*": "ignore"}}},
            {"name": "synthetic", "type": "synth", "train": 4, "val": 2, "seed": 5,
             "map": {"car": "car", "person": "person", "litter": "garbage", "stall": "ignore", "wire": "ignore"}},
            {"name": "yolox", "type": "teacher", "model": str(shared_data / "models" / "yolox_nano.onnx"),
             "manifest": "yolox_nano_coco80", "every": 40, "min_diff": 0, "conf": 0.4,
             "clips": [str(shared_data / "videos" / "arlington_crystal_dr_curb_parked.avi")],
             "map": {"person": "person", "car": "car", "*": "ignore"}},
        ]}))
    result = build(recipe, tmp_path / "mix")
    src = result.report["sources"]
    assert sum(src["cn"]["images"].values()) <= 40 and src["cn"]["imported_images"] == 1440
    # the teacher adds people/cars on the garbage photos; their garbage labels stay as they were
    assert sum(src["cn"]["teacher_boxes"].values()) > 0 and set(src["cn"]["teacher_boxes"]) <= {"person", "car"}
    assert set(src["cn"]["boxes"]) <= set(CN_CLASSES) | {"person", "car"}
    assert src["synthetic"]["images"] == {"train": 4, "val": 2}
    assert sum(src["yolox"]["images"].values()) == 3 and src["yolox"]["boxes"].get("car", 0) >= 12
    assert set(src["yolox"]["groups"].values()) == {0, 1}  # the clip is on one side only
    names = yaml.safe_load((tmp_path / "mix" / "data.yaml").read_text())["names"]
    assert names == {0: "garbage", 1: "garbage_bin", 2: "overflow", 3: "person", 4: "car"}
