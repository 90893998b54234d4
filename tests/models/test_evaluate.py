"""Data YAMLs, fingerprints, `models eval` end to end on tiny ONNX graphs, and the per-class verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from gridwatch.app.cli import main
from gridwatch.models.base import ModelConfigError
from gridwatch.models.evaluate import class_mapping, evaluate_detector, load_for_eval, verdict
from gridwatch.models.yolo_data import fingerprint, label_path, load_dataset, read_labels
from tests.models.conftest import manifest_dict, sha256_of
from tests.models.test_rect_and_batch import build_batch_onnx

DATA_CLASSES = ["garbage", "garbage_bin", "overflow"]


def make_dataset(root: Path, n: int = 3) -> Path:
    """``root/{train,val}/images`` of 640x360 grey frames, each labelled with one `overflow` box in the middle
    (pixels 240..400 x 120..240) and, in val, one `garbage` box at the top left that no model here finds."""
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / split / "images" / f"{i}.jpg"), np.full((360, 640, 3), 0, np.uint8))
            lines = ["2 0.5 0.5 0.25 0.3333333"] + (["0 0.05 0.05 0.05 0.05"] if split == "val" else [])
            (root / split / "labels" / f"{i}.txt").write_text("\n".join(lines) + "\n")
    yaml_path = root / "data.yaml"
    yaml_path.write_text("train: train/images\nval: val/images\nnames: {0: garbage, 1: garbage_bin, 2: overflow}\n")
    return yaml_path


def make_model(folder: Path, classes: list[str], box_class: str, name: str = "m") -> Path:
    """A 384x224 dynamic-batch model that reports one box of `box_class` covering the frame's middle box."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = np.zeros((1, 4 + len(classes), 8), np.float32)
    # 640x360 -> 384x216 (scale 0.6), pad_y 4: image box (240,120,400,240) -> input cx 192, cy 112, w 96, h 72
    raw[0, :4, 0] = (192, 112, 96, 72)
    raw[0, 4 + classes.index(box_class), 0] = 0.9
    onnx_path = build_batch_onnx(folder / f"{name}.onnx", raw, (224, 384))
    manifest = manifest_dict(name=name, input_size=[384, 224], classes=classes, sha256=sha256_of(onnx_path))
    onnx_path.with_suffix(".json").write_text(json.dumps(manifest), encoding="utf-8")
    return onnx_path


def test_data_yaml_splits_names_and_labels(tmp_path: Path) -> None:
    ds = load_dataset(make_dataset(tmp_path))
    assert ds.names == DATA_CLASSES and len(ds.images("train")) == 3 and len(ds.images("val")) == 3
    assert label_path(ds.images("val")[0]) == tmp_path / "val" / "labels" / "0.txt"
    xyxy, cls = read_labels(ds.images("val")[0], (640, 360), 3)
    np.testing.assert_allclose(xyxy[0], [240, 120, 400, 240], atol=1e-3)
    assert cls.tolist() == [2, 0]
    with pytest.raises(ModelConfigError, match="no 'test' split; it has \\['train', 'val'\\]"):
        ds.images("test")


def test_a_folder_with_classes_txt_is_a_data_set(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    (tmp_path / "classes.txt").write_text("garbage\ngarbage_bin\noverflow\n")
    ds = load_dataset(tmp_path)
    assert ds.names == DATA_CLASSES and len(ds.images("val")) == 3


def test_label_errors_name_file_and_line(tmp_path: Path) -> None:
    ds = load_dataset(make_dataset(tmp_path))
    label_path(ds.images("val")[1]).write_text("2 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ModelConfigError, match=r"1\.txt:2: class id 7 is not in the data YAML's names"):
        read_labels(ds.images("val")[1], (640, 360), 3)


def test_fingerprint_follows_images_and_labels_not_the_location(tmp_path: Path) -> None:
    a = fingerprint(load_dataset(make_dataset(tmp_path / "a")))
    assert a == fingerprint(load_dataset(make_dataset(tmp_path / "b")))  # same content elsewhere
    label_path(load_dataset(tmp_path / "b" / "data.yaml").images("train")[0]).write_text("1 0.5 0.5 0.1 0.1\n")
    assert a != fingerprint(load_dataset(tmp_path / "b" / "data.yaml"))  # one relabelled box


def test_eval_matches_classes_by_name_and_reports_missing_ones(tmp_path: Path) -> None:
    ds = load_dataset(make_dataset(tmp_path / "data"))
    # the model's ids differ from the data's: overflow is its class 0, and it has a class the data lacks
    model = make_model(tmp_path / "m", ["overflow", "person", "garbage"], "overflow")
    result = evaluate_detector(load_for_eval(model), ds.images("val"), ds.names)
    assert result.missing == ["garbage_bin"]
    assert result.ap50("overflow") == 1.0 and result.ap50("garbage") == 0.0 and result.ap50("garbage_bin") is None
    assert class_mapping(["overflow", "person", "garbage"], DATA_CLASSES) == {0: 2, 2: 0}
    with pytest.raises(ModelConfigError, match="share no name"):
        class_mapping(["car", "person"], DATA_CLASSES)


@pytest.mark.parametrize(("new", "base", "has_baseline", "expected"), [
    (0.70, 0.60, True, "better"), (0.50, 0.60, True, "worse"), (0.61, 0.60, True, "unchanged"),
    (0.59, 0.60, True, "unchanged"), (0.7, None, True, "new class"), (0.7, None, False, "first model"),
    (None, 0.6, True, "not in model"), (float("nan"), 0.6, True, "no labels"),
])
def test_verdicts(new: float | None, base: float | None, has_baseline: bool, expected: str) -> None:
    assert verdict(new, base, 0.02, has_baseline=has_baseline) == expected


def test_models_eval_cli_side_by_side_with_a_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "data")
    new = make_model(tmp_path / "new", DATA_CLASSES, "overflow", "new")
    old = make_model(tmp_path / "old", ["garbage", "overflow"], "garbage", "old")  # calls the overflow garbage
    out = tmp_path / "eval"
    assert main(["models", "eval", str(new), "--data", str(data), "--baseline", str(old), "--out", str(out),
                 "--quiet", "--scenarios", "0"]) == 0  # box level only: tests/test_incident_eval.py does incidents
    text = capsys.readouterr().out
    lines = {line.split()[0]: line for line in text.splitlines() if line.split()}
    assert lines["overflow"].split()[-1] == "better"  # 1.000 against 0.000
    assert lines["garbage"].split()[-1] == "unchanged"  # 0 and 0: neither finds the corner box
    assert lines["garbage_bin"].endswith("no labels")  # the val split has no bin: no AP either way
    report = json.loads((out / "metrics.json").read_text())
    assert report["metrics"]["per_class_mAP50"]["overflow"] == 1.0
    assert report["confusion_matrix"][2][2] == 3  # three overflow boxes found as overflow
    assert report["confusion_matrix"][0][3] == 3  # three garbage boxes missed
    for png in ("confusion_matrix.png", "pr_curves.png", "baseline_confusion_matrix.png"):
        image = cv2.imread(str(out / png))
        assert image is not None and image.shape[0] > 200, png
