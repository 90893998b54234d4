"""`build` from a recipe mixing every importer into one Ultralytics folder; report, fingerprint; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import yaml

from gridwatch.app.cli import main
from gridwatch.models.datasets import DatasetError, build, write_report
from tests.models.datasets.fixtures import coco_json, cvat_xml, label_studio_json, write_clip, yolo_folder

CLASSES = ["garbage", "garbage_bin", "person", "car"]


def _recipe(tmp_path: Path, **overrides: object) -> Path:
    write_clip(tmp_path / "clip.avi")
    cvat_xml(tmp_path / "clip.xml")
    label_studio_json(tmp_path / "ls.json")
    coco_json(tmp_path / "coco")
    yolo_folder(tmp_path / "yolo", {"train": [f"{i:06d}_jpg.rf.{i:08x}aa" for i in range(10)]}, ["garbage", "bin"])
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "yolo.yaml").write_text("garbage: garbage\nbin: garbage_bin\n", encoding="utf-8")
    recipe = {
        "classes": CLASSES, "seed": 1, "val_fraction": 0.3,
        "sources": [
            {"name": "photos", "type": "yolo", "path": "yolo", "map": "maps/yolo.yaml"},
            {"name": "coco", "type": "coco", "path": "coco/coco.json", "map": {"bag": "garbage", "bin": "garbage_bin"},
             "weight": 2},
            {"name": "cvat", "type": "cvat_video", "path": "clip.xml", "every": 5, "min_diff": 0.5,
             "map": {"car": "car", "tree": "ignore"}},
            {"name": "ls", "type": "label_studio_video", "path": "ls.json", "videos": ".", "every": 10,
             "map": {"Person": "person"}},
        ],
    }
    for key, value in overrides.items():
        recipe[key] = value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_build_mixes_every_format_into_an_ultralytics_folder(tmp_path: Path) -> None:
    result = build(_recipe(tmp_path), tmp_path / "out")
    out = result.out
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {"path": str(out.resolve()), "train": "images/train", "val": "images/val",
                    "names": dict(enumerate(CLASSES))}
    for split in ("train", "val"):
        images = sorted(p.stem for p in (out / "images" / split).iterdir())
        assert images == sorted(p.stem for p in (out / "labels" / split).iterdir())
    src = result.report["sources"]
    # one clip per video source: the whole clip is on one side
    for name in ("cvat", "ls"):
        assert sum(src[name]["groups"].values()) == 1
    assert src["cvat"]["near_duplicate_frames"] == 3 and src["cvat"]["polygon_shapes"] == 1
    assert src["cvat"]["ignored_source_boxes"] == {"tree": 1}
    assert src["coco"]["written"]["train"] == 2 * src["coco"]["images"]["train"]  # weight 2
    coco_groups = {p.name.split("__")[1][:6] for s in ("train", "val") for p in (out / "images" / s).glob("coco__*")}
    assert coco_groups <= {"000007", "street"}
    sides = {s: {p.stem for p in (out / "images" / s).glob("coco__000007*")} for s in ("train", "val")}
    assert not (sides["train"] and sides["val"])  # both Roboflow copies of photo 000007 on one side
    counts = result.report["counts"]
    assert sum(c["images"] for c in counts.values()) == sum(sum(v["written"].values()) for v in src.values())
    assert (out / "contact_sheet.png").is_file() and cv2.imread(str(out / "contact_sheet.png")) is not None
    assert "box size histogram" in (out / "report.txt").read_text()
    assert json.loads((out / "report.json").read_text())["fingerprint"] == result.report["fingerprint"]


def test_same_recipe_same_fingerprint_and_a_relabel_changes_it(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    a = build(recipe, tmp_path / "a").report
    b = build(recipe, tmp_path / "b").report
    assert a["fingerprint"] == b["fingerprint"] and a["counts"] == b["counts"]
    label = next((tmp_path / "b" / "labels" / "train").glob("photos__*.txt"))
    label.write_text("1 0.5 0.5 0.2 0.2\n")
    assert write_report(tmp_path / "b")["fingerprint"] != a["fingerprint"]


def test_unmapped_class_stops_the_build_before_writing(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    raw = yaml.safe_load(recipe.read_text())
    raw["sources"][2]["map"] = {"car": "car"}  # `tree` is not mapped
    raw["sources"][3]["map"] = {"Pedestrian": "person"}  # nor is `Person`
    recipe.write_text(yaml.safe_dump(raw))
    with pytest.raises(DatasetError) as err:
        build(recipe, tmp_path / "out")
    msg = str(err.value)
    assert "source 'cvat': unmapped classes 'tree' (1 box)" in msg  # counted on the kept frames (0, 5, ...)
    assert "source 'ls': unmapped classes 'Person'" in msg and "ignore" in msg
    assert not (tmp_path / "out").exists()


def test_overwrite_refuses_a_folder_it_did_not_build(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="refusing to delete it"):
        build(_recipe(tmp_path), tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_keep_split_uses_the_exports_folders(tmp_path: Path) -> None:
    root = yolo_folder(tmp_path / "y", {"train": ["a1", "a2", "a3"], "val": ["b1"]}, ["garbage"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"classes": ["garbage"], "sources": [
        {"name": "y", "type": "yolo", "path": str(root), "map": {"garbage": "garbage"}, "split": "keep"}]}))
    counts = build(recipe, tmp_path / "out").report["counts"]
    assert (counts["train"]["images"], counts["val"]["images"]) == (3, 1)


def test_recipe_errors_name_the_field(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"classes": ["garbage"], "sources": [
        {"name": "y", "type": "yolo", "path": "y", "map": {}, "weigth": 2}]}))
    with pytest.raises(DatasetError, match=r"sources\.0\.yolo\.weigth"):
        build(recipe, tmp_path / "out")


def test_cli_builds_reports_and_exits_2_on_a_bad_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _recipe(tmp_path)
    assert main(["data", "build", str(recipe), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "fingerprint" in capsys.readouterr().out
    assert main(["data", "build", str(recipe), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["data", "build", str(recipe), "--out", str(tmp_path / "out"), "--quiet", "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["data", "report", str(tmp_path / "out"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["fingerprint"] == json.loads((tmp_path / "out" / "report.json").read_text())["fingerprint"]
    assert set(printed["sources"]) == {"photos", "coco", "cvat", "ls"}  # the build's notes survive a re-report
    assert main(["data", "classes", str(recipe), "--quiet"]) == 0
    assert "'tree': 1 boxes -> ignore" in capsys.readouterr().out


def test_shipped_street_recipe_and_its_maps_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    from gridwatch.models.datasets import recipe as recipe_mod

    monkeypatch.setenv("GRIDWATCH_SHARED", "/nowhere")
    path = Path(recipe_mod.__file__).parent / "recipes" / "street.yaml"
    recipe = recipe_mod.load_recipe(path)
    assert recipe.classes[:4] == ["garbage", "garbage_bin", "overflow", "person"]
    for i, spec in enumerate(recipe.sources):
        recipe_mod.class_map_of(spec.map, recipe.classes, path.parent, f"sources.{i}.map")
        if spec.teacher is not None:
            recipe_mod.class_map_of(spec.teacher.map, recipe.classes, path.parent, f"sources.{i}.teacher.map")
    cn = recipe.sources[0]
    assert recipe_mod.resolve_path(cn.path, path.parent) == Path(  # type: ignore[union-attr]
        "/nowhere/data/real/garbage_cn_street")
