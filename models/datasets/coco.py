"""Import a COCO detection JSON (`images`, `annotations` with `bbox: [x, y, w, h]` in pixels, `categories`).

Image files are looked up relative to `images_dir` (default: the JSON's folder, then its `images/`
subfolder). `iscrowd` annotations are kept as boxes (a crowd of bags is still garbage). Images without
annotations are background images.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridwatch.models.datasets.groups import source_photo
from gridwatch.models.datasets.records import Box, DatasetError, Sample, safe_stem


def _load(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"cannot read COCO file {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not {"images", "annotations", "categories"} <= set(raw):
        raise DatasetError(f"{path} is not a COCO detection file: it needs `images`, `annotations` and `categories`")
    return raw


def _find_image(file_name: str, folders: list[Path], json_path: Path) -> Path:
    for folder in folders:
        if (folder / file_name).is_file():
            return folder / file_name
    raise DatasetError(f"{json_path}: image {file_name!r} not found under {[str(f) for f in folders]}; "
                       f"set `images:` to the folder holding the images")


def import_coco(path: Path, source: str, images_dir: Path | None = None,
                tick: Callable[[], None] | None = None) -> list[Sample]:
    raw = _load(path)
    names = {int(c["id"]): str(c["name"]) for c in raw["categories"]}
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ann in raw["annotations"]:
        by_image[int(ann["image_id"])].append(ann)
    folders = [images_dir] if images_dir is not None else [path.parent, path.parent / "images"]
    samples = []
    for img in raw["images"]:
        w, h = int(img["width"]), int(img["height"])
        boxes = []
        for ann in by_image.get(int(img["id"]), []):
            cid = int(ann["category_id"])
            if cid not in names:
                raise DatasetError(f"{path}: annotation {ann.get('id')} has category_id {cid}, which is not in "
                                   f"`categories`; fix the export")
            x, y, bw, bh = (float(v) for v in ann["bbox"])
            box = Box(names[cid], x / w, y / h, (x + bw) / w, (y + bh) / h).clipped()
            if box is not None:
                boxes.append(box)
        file_name = str(img["file_name"])
        image = _find_image(file_name, folders, path)
        samples.append(Sample(source, safe_stem(Path(file_name).with_suffix("").as_posix()),
                              source_photo(file_name), image, (w, h), tuple(boxes)))
        if tick is not None:
            tick()
    return samples
