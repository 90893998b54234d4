"""`gridwatch models train --oversample CLASS=K`: the derived train list, its refusals, and that val is untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gridwatch.app.cli import main
from gridwatch.models.base import ModelConfigError
from gridwatch.models.oversample import oversampled_list, parse_factors, write_oversampled
from gridwatch.models.yolo_data import load_dataset

NAMES = ["garbage", "garbage_bin", "overflow"]


def _data_set(root: Path) -> Path:
    """train: a (garbage), b (bin), c (garbage + overflow), d (no label file); val: v (garbage)."""
    boxes = {"train": {"a": ["0"], "b": ["1"], "c": ["0", "2"], "d": None}, "val": {"v": ["0"]}}
    for split, images in boxes.items():
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for stem, classes in images.items():
            (root / split / "images" / f"{stem}.jpg").write_bytes(b"jpg")
            if classes is not None:
                (root / split / "labels" / f"{stem}.txt").write_text(
                    "".join(f"{c} 0.5 0.5 0.2 0.2\n" for c in classes))
    data = root / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(root), "train": "train/images", "val": "val/images",
                                    "names": NAMES}))
    return data


def test_images_with_the_class_are_listed_k_times(tmp_path: Path) -> None:
    ds = load_dataset(_data_set(tmp_path))
    listed = [p.stem for p in oversampled_list(ds.images("train"), {0: 3})]
    assert listed == ["a", "a", "a", "b", "c", "c", "c", "d"]
    # an image with two oversampled classes is repeated by the larger factor, not their product
    assert [p.stem for p in oversampled_list(ds.images("train"), {0: 2, 2: 3})] == ["a", "a", "b", "c", "c", "c", "d"]


def test_the_derived_yaml_trains_on_the_list_and_keeps_val(tmp_path: Path) -> None:
    ds = load_dataset(_data_set(tmp_path / "data"))
    made = write_oversampled(ds, {0: 2}, tmp_path / "run" / "oversampled")
    derived = load_dataset(made.yaml_path)
    assert derived.names == NAMES
    assert [p.stem for p in derived.images("train")] == ["a", "a", "b", "c", "c", "d"]
    assert derived.images("val") == [p.resolve() for p in ds.images("val")]
    assert (made.train_images, made.repeated_images) == (6, 2)


@pytest.mark.parametrize(("spec", "fix"), [("litter=2", "CLASS one of"), ("garbage", "CLASS one of"),
                                           ("garbage=1", "from 2 to 10"), ("garbage=x", "from 2 to 10"),
                                           ("garbage=11", "from 2 to 10")])
def test_a_bad_spec_names_itself_and_the_fix(spec: str, fix: str) -> None:
    with pytest.raises(ModelConfigError, match=fix) as info:
        parse_factors([spec], NAMES)
    assert repr(spec) in str(info.value)


def test_the_cli_refuses_a_bad_spec_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _data_set(tmp_path / "data")
    code = main(["models", "train", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--oversample", "litter=2"])
    assert code == 2 and "CLASS one of ['garbage', 'garbage_bin', 'overflow']" in capsys.readouterr().err
    assert not (tmp_path / "run" / "weights").exists()


def test_resume_keeps_the_runs_own_sampling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "last.pt").write_bytes(b"weights")
    (run / "training.json").write_text('{"data": "d.yaml"}')
    code = main(["models", "train", "--out", str(run), "--resume", "--oversample", "garbage=2"])
    assert code == 2 and "drop --oversample" in capsys.readouterr().err
