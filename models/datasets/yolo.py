"""Import a YOLO txt folder: `images/` + `labels/` (one `class cx cy w h` line per box, normalised) and the class
names in `classes.txt` (one per line) or a `data.yaml` (`names:` list or mapping).

Three layouts are read: a flat one (`ROOT/images`, `ROOT/labels`); one folder per split
(`ROOT/train/images`, `ROOT/val/images`, also `valid`/`test`, as Roboflow and `garbage_cn_street` have it);
and Ultralytics' own (`ROOT/images/train`, `ROOT/labels/train`, as `synth.build_dataset` and
`gridwatch data build` write it). With split folders each image remembers its split (used with
`split: keep`; `test` counts as `val`). Images without a label
file are kept as background images (no boxes); a class id outside the names is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import yaml

from gridwatch.models.datasets.groups import source_photo
from gridwatch.models.datasets.records import Box, DatasetError, Sample, Split, safe_stem

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPLIT_DIRS: dict[str, Split] = {"train": "train", "val": "val", "valid": "val", "test": "val"}


def read_class_names(root: Path) -> list[str]:
    """Names from `classes.txt` (or `obj.names`) or `data.yaml` in `root` or its parent."""
    for folder in (root, root.parent):
        for txt in ("classes.txt", "obj.names"):
            if (folder / txt).is_file():
                return [ln.strip() for ln in (folder / txt).read_text(encoding="utf-8").splitlines() if ln.strip()]
        if (folder / "data.yaml").is_file():
            names = (yaml.safe_load((folder / "data.yaml").read_text(encoding="utf-8")) or {}).get("names")
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names)]
            if isinstance(names, list):
                return [str(n) for n in names]
    raise DatasetError(f"no class names for YOLO folder {root}: add classes.txt (one name per line, id order) "
                       f"or a data.yaml with `names:`")


def split_folders(root: Path) -> list[tuple[Path, Path, Split | None]]:
    """[(images folder, labels folder, split or None)]; raise when `root` has none of the layouts."""
    ultralytics: list[tuple[Path, Path, Split | None]] = [
        (root / "images" / d, root / "labels" / d, s) for d, s in SPLIT_DIRS.items() if (root / "images" / d).is_dir()]
    if ultralytics:
        return ultralytics
    if (root / "images").is_dir():
        return [(root / "images", root / "labels", None)]
    found: list[tuple[Path, Path, Split | None]] = [
        (root / d / "images", root / d / "labels", s) for d, s in SPLIT_DIRS.items() if (root / d / "images").is_dir()]
    if not found:
        raise DatasetError(f"{root} is not a YOLO folder: expected {root}/images + labels, "
                           f"{root}/train/images (and val/valid/test) or {root}/images/train")
    return found


def image_size(path: Path) -> tuple[int, int]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"cannot read image {path}; remove it or re-export the dataset")
    return int(image.shape[1]), int(image.shape[0])


def parse_label_file(path: Path, names: list[str]) -> tuple[Box, ...]:
    boxes = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise DatasetError(f"{path}:{n}: expected `class cx cy w h`, got {line!r} (segments are not supported)")
        cid, (cx, cy, w, h) = int(parts[0]), (float(p) for p in parts[1:])
        if not 0 <= cid < len(names):
            raise DatasetError(f"{path}:{n}: class id {cid} is not in the class names {names}; fix classes.txt")
        box = Box(names[cid], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2).clipped()
        if box is not None:
            boxes.append(box)
    return tuple(boxes)


def import_yolo(root: Path, source: str, tick: Callable[[], None] | None = None) -> list[Sample]:
    """Every image under `root` as a Sample; group = the source photo (`source_photo`)."""
    names = read_class_names(root)
    samples = []
    for images, labels, split in split_folders(root):
        for img in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            label = labels / f"{img.stem}.txt"
            boxes = parse_label_file(label, names) if label.is_file() else ()
            key = safe_stem(f"{split or 'all'}_{img.stem}")
            samples.append(Sample(source, key, source_photo(img.name), img, image_size(img), boxes, split))
            if tick is not None:
                tick()
    return samples


def count_yolo_images(root: Path) -> int:
    return sum(1 for images, _, _ in split_folders(root) for p in images.iterdir()
               if p.suffix.lower() in IMAGE_SUFFIXES)
