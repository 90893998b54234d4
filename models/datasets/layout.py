"""The output: a plain Ultralytics detection folder, nothing else needed to train on it.

    OUT/data.yaml               path, train: images/train, val: images/val, names: {0: garbage, ...}
    OUT/images/{train,val}/     <source>__<key>.jpg (hard links to the source files where possible, else copies)
    OUT/labels/{train,val}/     <source>__<key>.txt (`class cx cy w h`, normalised; empty = background image)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import yaml

from gridwatch.models.datasets.records import SPLITS, DatasetError, Sample, Split

MARKER = "report.json"


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty `out` unless `overwrite` and it holds an earlier build (report.json); call before the
    (long) import so a wrong --out fails at once."""
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(f"{out} is not empty; choose another --out or pass --overwrite to replace a dataset "
                               f"built there before")
        if not (out / MARKER).is_file():
            raise DatasetError(f"{out} is not empty and holds no dataset built by `gridwatch data build` "
                               f"({MARKER} missing); refusing to delete it, choose another --out")


def prepare_out(out: Path, overwrite: bool) -> None:
    """Empty split folders in `out`, after removing an earlier build's files (see `check_out`)."""
    check_out(out, overwrite)
    for name in ("images", "labels", "data.yaml", MARKER, "report.txt", "contact_sheet.png"):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for split in SPLITS:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)


def _place(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_sample(out: Path, split: Split, stem: str, sample: Sample, class_ids: dict[str, int]) -> Path:
    """Write the image and its label file; returns the image path."""
    suffix = sample.image.suffix.lower() if isinstance(sample.image, Path) else ".jpg"
    dst = out / "images" / split / f"{stem}{suffix}"
    if dst.exists():
        raise DatasetError(f"two samples would both be written as {dst}; give the sources distinct names")
    if isinstance(sample.image, Path):
        _place(sample.image, dst)
    else:
        dst.write_bytes(sample.image)
    lines = [b.yolo_line(class_ids[b.label]) for b in sample.boxes]
    (out / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return dst


def write_data_yaml(out: Path, classes: Sequence[str]) -> Path:
    data = {"path": str(out.resolve()), "train": "images/train", "val": "images/val",
            "names": dict(enumerate(classes))}
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def read_names(root: Path) -> list[str]:
    path = root / "data.yaml"
    if not path.is_file():
        raise DatasetError(f"{root} has no data.yaml; point at a folder written by `gridwatch data build` "
                           f"(or any Ultralytics dataset folder)")
    names = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("names")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise DatasetError(f"{path}: `names:` missing; it must list the class names")
