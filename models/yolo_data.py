"""Ultralytics-layout data sets: the data YAML, its splits, YOLO txt labels, and the data set's fingerprint.

The layout Ultralytics trains on (and `garbage_cn_street` ships in)::

    path: /data/street          # optional root; relative split paths resolve against it (else the YAML's folder)
    train: train/images         # a folder of images, a .txt list of image paths, or a list of either
    val: val/images
    names: {0: garbage, 1: garbage_bin, 2: overflow}   # or a list

Each image's label is the same path with the last ``images`` folder replaced by ``labels`` and the suffix by
``.txt``: one ``class cx cy w h`` line per box, normalised to the image size. A missing label file means "no
objects". No torch, no Ultralytics: the edge-side evaluation reads data sets with this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gridwatch.models.base import ModelConfigError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class YoloDataset:
    """A parsed data YAML: class names (index = class id) and each split's image files, sorted."""

    yaml_path: Path
    root: Path
    names: list[str]
    splits: dict[str, list[Path]]

    def images(self, split: str) -> list[Path]:
        """The split's images; raise ModelConfigError naming the splits the YAML has when it lacks `split`."""
        if split not in self.splits:
            raise ModelConfigError(f"{self.yaml_path}: no '{split}' split; it has {sorted(self.splits)}")
        return self.splits[split]


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` path component becomes ``labels``, the suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_labels(image: Path, image_wh: tuple[int, int], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(xyxy float64 (N, 4) in pixels, class ids int64 (N,)) of one image; no label file = no boxes.

    Raise ModelConfigError naming the file and line for a malformed line or an unknown class id.
    """
    path = label_path(image)
    if not path.is_file():
        return np.zeros((0, 4)), np.zeros(0, dtype=np.int64)
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, cx, cy, bw, bh = int(fields[0]), *map(float, fields[1:5])
        except (ValueError, TypeError):
            raise ModelConfigError(f"{path}:{n}: expected 'class cx cy w h', got {line!r}") from None
        if len(fields) != 5:
            raise ModelConfigError(f"{path}:{n}: expected 5 fields (class cx cy w h, boxes only), got {len(fields)}")
        if not 0 <= cls < n_classes:
            raise ModelConfigError(f"{path}:{n}: class id {cls} is not in the data YAML's names (0..{n_classes - 1})")
        rows.append((cls, cx, cy, bw, bh))
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    w, h = image_wh
    pcx, pcy, pw, ph = arr[:, 1] * w, arr[:, 2] * h, arr[:, 3] * w, arr[:, 4] * h
    xyxy = np.stack([pcx - pw / 2, pcy - ph / 2, pcx + pw / 2, pcy + ph / 2], axis=1)
    return xyxy, arr[:, 0].astype(np.int64)


def _names(raw: Any, path: Path) -> list[str]:
    if isinstance(raw, dict):
        try:
            ids = sorted(int(k) for k in raw)
        except ValueError:
            raise ModelConfigError(f"{path}: names keys must be class ids 0..n-1, got {list(raw)}") from None
        if ids != list(range(len(ids))):
            raise ModelConfigError(f"{path}: names must number the classes 0..{len(ids) - 1} without gaps, got {ids}")
        return [str(raw[k] if k in raw else raw[str(k)]) for k in ids]
    if isinstance(raw, list) and raw:
        return [str(n) for n in raw]
    raise ModelConfigError(f"{path}: 'names' must be a list or a {{id: name}} mapping of the class names")


def _split_images(entry: Any, root: Path, yaml_path: Path, split: str) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    for item in entries:
        p = Path(str(item))
        p = p if p.is_absolute() else root / p
        if p.is_dir():
            images += [f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES]
        elif p.suffix == ".txt" and p.is_file():
            for line in p.read_text(encoding="utf-8").split():
                q = Path(line)
                images.append(q if q.is_absolute() else (p.parent / q))
        else:
            raise ModelConfigError(f"{yaml_path}: {split}: {p} is neither a folder of images nor a .txt list")
    return sorted(images)


def load_folder(root: Path) -> YoloDataset:
    """A folder laid out like `garbage_cn_street`: ``classes.txt`` (one name per line) and ``<split>/images``."""
    names_file = root / "classes.txt"
    if not names_file.is_file():
        raise ModelConfigError(f"{root} is a folder without classes.txt; pass its data YAML instead")
    names = [n.strip() for n in names_file.read_text(encoding="utf-8").splitlines() if n.strip()]
    splits = {s: _split_images(root / s / "images", root, names_file, s)
              for s in SPLITS if (root / s / "images").is_dir()}
    if not splits:
        raise ModelConfigError(f"{root}: no train/, val/ or test/ folder with images/ inside")
    return YoloDataset(names_file, root, names, splits)


def load_dataset(yaml_path: str | Path) -> YoloDataset:
    """Parse an Ultralytics data YAML (or a folder with classes.txt and ``<split>/images``, see `load_folder`);
    raise ModelConfigError naming the file and field when it is unusable."""
    yaml_path = Path(yaml_path)
    if yaml_path.is_dir():
        return load_folder(yaml_path)
    try:
        raw = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelConfigError(f"cannot read data YAML {yaml_path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ModelConfigError(f"data YAML {yaml_path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or "names" not in raw:
        raise ModelConfigError(f"{yaml_path}: not an Ultralytics data YAML (needs 'names' and a 'val' split)")
    root = Path(str(raw.get("path") or yaml_path.parent))
    root = root if root.is_absolute() else (yaml_path.parent / root)
    splits = {s: _split_images(raw[s], root, yaml_path, s) for s in SPLITS if raw.get(s)}
    return YoloDataset(yaml_path, root, _names(raw["names"], yaml_path), splits)


def fingerprint(dataset: YoloDataset, splits: tuple[str, ...] = SPLITS) -> str:
    """sha256 over the sorted image list of `splits` (the ones the YAML has): for each image its path relative
    to the data root, the sha256 of its bytes and of its label file. Renaming, editing or relabelling any image
    changes it; moving the whole data set elsewhere does not."""
    digest = hashlib.sha256()
    for split in splits:
        for image in dataset.splits.get(split, []):
            try:
                rel = image.relative_to(dataset.root).as_posix()
            except ValueError:
                rel = image.as_posix()
            label = label_path(image)
            label_hash = hashlib.sha256(label.read_bytes()).hexdigest() if label.is_file() else "-"
            digest.update(f"{split}\t{rel}\t{hashlib.sha256(image.read_bytes()).hexdigest()}\t{label_hash}\n".encode())
    return digest.hexdigest()
