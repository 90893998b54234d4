"""Class-balanced sampling for `gridwatch models train --oversample CLASS=K`: a derived data YAML whose train split
lists every image once and each image holding a box of CLASS K times in all.

A rare or hard class (``garbage`` has half the boxes of ``garbage_bin`` in `garbage_cn_street`) then weighs K times
as much in each epoch's loss, without touching the data set: the derived YAML and its ``.txt`` image list live in
the run folder and name the original files; val and test stay as they were, so metrics remain comparable with a
run that did not oversample. No torch, no Ultralytics here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from gridwatch.models.base import ModelConfigError
from gridwatch.models.yolo_data import SPLITS, YoloDataset, label_path

MAX_FACTOR = 10


@dataclass(frozen=True)
class Oversampled:
    yaml_path: Path
    train_images: int  # entries in the derived train list, repeats included
    repeated_images: int  # distinct images listed more than once


def parse_factors(specs: list[str], names: list[str]) -> dict[int, int]:
    """``["garbage=2"]`` → ``{class id: factor}``; raise ModelConfigError naming the spec and the fix."""
    factors: dict[int, int] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name or name not in names:
            raise ModelConfigError(f"--oversample {spec!r}: give CLASS=K with CLASS one of {names}, e.g. "
                                   f"{names[0]}=2")
        try:
            k = int(value)
        except ValueError:
            k = 0
        if not 2 <= k <= MAX_FACTOR:
            raise ModelConfigError(f"--oversample {spec!r}: K must be a whole number from 2 to {MAX_FACTOR}")
        factors[names.index(name)] = k
    return factors


def label_classes(image: Path) -> set[int]:
    """Class ids of an image's boxes (first field of each label line); a missing label file has none."""
    path = label_path(image)
    if not path.is_file():
        return set()
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields and fields[0].isdigit():
            ids.add(int(fields[0]))
    return ids


def oversampled_list(images: list[Path], factors: dict[int, int]) -> list[Path]:
    """Each image once, or max(K of its classes) times; order kept (repeats follow their image)."""
    out: list[Path] = []
    for image in images:
        times = max((factors.get(c, 1) for c in label_classes(image)), default=1)
        out += [image] * times
    return out


def write_oversampled(dataset: YoloDataset, factors: dict[int, int], folder: Path) -> Oversampled:
    """Write ``folder/train.txt`` and ``folder/data.yaml`` (val/test as lists of the original images)."""
    folder.mkdir(parents=True, exist_ok=True)
    train = dataset.images("train")
    listed = oversampled_list(train, factors)
    doc: dict[str, object] = {"names": list(dataset.names)}
    for split in SPLITS:
        if split not in dataset.splits:
            continue
        items = listed if split == "train" else dataset.splits[split]
        (folder / f"{split}.txt").write_text("".join(f"{p.resolve()}\n" for p in items), encoding="utf-8")
        doc[split] = str((folder / f"{split}.txt").resolve())
    path = folder / "data.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    repeats = Counter(listed)
    return Oversampled(path, len(listed), sum(1 for n in repeats.values() if n > 1))
