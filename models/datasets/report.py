"""The dataset report: what is in a built (or any Ultralytics) dataset folder, and its fingerprint.

- counts: images, background images and boxes per class, per split;
- box sizes: histogram of sqrt(box area) in image pixels per class and split (bins as COCO's small < 32 <=
  medium < 96 <= large, finer), as a text table and in JSON;
- a contact sheet PNG of random labelled images with their boxes;
- fingerprint: sha256 over the sorted file list (split/file name) and every label file's content, plus the class
  names: the same dataset always gives the same digest, any added, removed or relabelled image changes it
  (image pixels are not hashed: that would read gigabytes; renaming an image changes it).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gridwatch.models.datasets.layout import read_names
from gridwatch.models.datasets.records import SPLITS

SIZE_BINS: tuple[int, ...] = (0, 8, 16, 32, 64, 96, 128, 256, 512)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
BUILD_KEYS = ("recipe", "seed", "val_fraction", "sources")


@dataclass(frozen=True)
class LabelledImage:
    split: str
    image: Path
    label: Path
    boxes: tuple[tuple[int, float, float, float, float], ...]  # class id, cx, cy, w, h (normalised)


def scan(root: Path) -> list[LabelledImage]:
    out = []
    for split in SPLITS:
        folder = root / "images" / split
        if not folder.is_dir():
            continue
        for img in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            label = root / "labels" / split / f"{img.stem}.txt"
            rows = []
            if label.is_file():
                for line in label.read_text(encoding="utf-8").splitlines():
                    parts = line.split()
                    if len(parts) == 5:
                        rows.append((int(parts[0]), *(float(p) for p in parts[1:])))
            out.append(LabelledImage(split, img, label, tuple(rows)))  # type: ignore[arg-type]
    return out


def fingerprint(root: Path, names: Sequence[str], images: Sequence[LabelledImage]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(list(names)).encode())
    for item in sorted(images, key=lambda i: (i.split, i.image.name)):
        h.update(f"\n{item.split}/{item.image.name}\n".encode())
        if item.label.is_file():
            h.update(item.label.read_bytes())
    return h.hexdigest()


def _bin_name(i: int) -> str:
    lo = SIZE_BINS[i]
    return f">={lo}" if i + 1 == len(SIZE_BINS) else f"{lo}-{SIZE_BINS[i + 1]}"


def _size_bin(px: float) -> int:
    return max(i for i, lo in enumerate(SIZE_BINS) if px >= lo)


def image_size(path: Path, known: Mapping[str, tuple[int, int]] | None) -> tuple[int, int]:
    if known is not None and path.name in known:
        return known[path.name]
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return (int(img.shape[1]), int(img.shape[0])) if img is not None else (0, 0)


def build_report(root: Path, sizes: Mapping[str, tuple[int, int]] | None = None,
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report as a JSON-able dict. `sizes`: image file name -> (w, h) when known (saves decoding)."""
    names = read_names(root)
    images = scan(root)
    counts: dict[str, dict[str, Any]] = {}
    hist: dict[str, dict[str, list[int]]] = {}
    for split in SPLITS:
        items = [i for i in images if i.split == split]
        boxes: Counter[str] = Counter()
        hist[split] = {n: [0] * len(SIZE_BINS) for n in names}
        for item in items:
            w, h = image_size(item.image, sizes) if item.boxes else (0, 0)
            for cid, _cx, _cy, bw, bh in item.boxes:
                name = names[cid] if 0 <= cid < len(names) else f"#{cid}"
                boxes[name] += 1
                hist[split].setdefault(name, [0] * len(SIZE_BINS))[_size_bin(float(np.sqrt(bw * w * bh * h)))] += 1
        counts[split] = {"images": len(items), "background_images": sum(1 for i in items if not i.boxes),
                         "boxes": {n: boxes.get(n, 0) for n in names} | {k: v for k, v in boxes.items()
                                                                          if k not in names}}
    return {"classes": names, "fingerprint": fingerprint(root, names, images), "counts": counts,
            "box_size_bins_px": [_bin_name(i) for i in range(len(SIZE_BINS))], "box_sizes": hist,
            **(dict(extra) if extra else {})}


def report_text(report: Mapping[str, Any]) -> str:
    names: list[str] = report["classes"]
    lines = [f"fingerprint {report['fingerprint']}", ""]
    width = max(12, *(len(n) + 2 for n in names))
    lines.append("split".ljust(8) + "images".rjust(8) + "empty".rjust(7) + "".join(n.rjust(width) for n in names))
    for split, c in report["counts"].items():
        lines.append(split.ljust(8) + str(c["images"]).rjust(8) + str(c["background_images"]).rjust(7)
                     + "".join(str(c["boxes"].get(n, 0)).rjust(width) for n in names))
    bins: list[str] = report["box_size_bins_px"]
    lines += ["", "box size histogram: sqrt(box area) in image pixels, boxes per bin"]
    lines.append("split/class".ljust(24) + "".join(b.rjust(8) for b in bins))
    for split, per_class in report["box_sizes"].items():
        for name, row in per_class.items():
            lines.append(f"{split}/{name}".ljust(24) + "".join(str(v).rjust(8) for v in row))
    for key in ("sources", "skipped"):
        if key in report:
            lines += ["", f"{key}:"] + [f"  {k}: {json.dumps(v, ensure_ascii=False)}" for k, v in report[key].items()]
    return "\n".join(lines) + "\n"


def _colour(cid: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(cid + 17)
    return tuple(int(v) for v in rng.integers(64, 256, 3))  # type: ignore[return-value]


def contact_sheet(root: Path, out: Path, count: int = 16, seed: int = 0, tile: int = 320) -> int:
    """Write a grid of `count` random labelled images with their boxes and class names; returns how many."""
    names = read_names(root)
    labelled = [i for i in scan(root) if i.boxes]
    if not labelled:
        return 0
    rng = np.random.default_rng(seed)
    picks = [labelled[int(i)] for i in rng.choice(len(labelled), size=min(count, len(labelled)), replace=False)]
    cols = int(np.ceil(np.sqrt(len(picks))))
    rows = int(np.ceil(len(picks) / cols))
    sheet = np.full((rows * tile, cols * tile, 3), 32, np.uint8)
    for n, item in enumerate(picks):
        img = cv2.imread(str(item.image))
        if img is None:
            continue
        h, w = img.shape[:2]
        s = tile / max(h, w)
        img = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
        ih, iw = img.shape[:2]
        for cid, cx, cy, bw, bh in item.boxes:
            p1 = (int((cx - bw / 2) * iw), int((cy - bh / 2) * ih))
            p2 = (int((cx + bw / 2) * iw), int((cy + bh / 2) * ih))
            cv2.rectangle(img, p1, p2, _colour(cid), 2)
            label = names[cid] if 0 <= cid < len(names) else str(cid)
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
            org = (max(0, p1[0]), max(th + 2, p1[1]))
            cv2.rectangle(img, (org[0], org[1] - th - 3), (org[0] + tw + 2, org[1]), _colour(cid), -1)
            cv2.putText(img, label, (org[0] + 1, org[1] - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                        cv2.LINE_AA)
        cv2.putText(img, f"{item.split}/{item.image.stem[:36]}", (3, ih - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (255, 255, 255), 1, cv2.LINE_AA)
        r, c = divmod(n, cols)
        sheet[r * tile:r * tile + ih, c * tile:c * tile + iw] = img
    cv2.imwrite(str(out), sheet)
    return len(picks)


def write_report(root: Path, sizes: Mapping[str, tuple[int, int]] | None = None,
                 extra: Mapping[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    """report.json, report.txt and contact_sheet.png in `root`; returns the report.

    `extra`: what the build knows (recipe, sources); None keeps those keys of an earlier report.json."""
    if extra is None and (root / "report.json").is_file():
        previous = json.loads((root / "report.json").read_text(encoding="utf-8"))
        extra = {k: previous[k] for k in BUILD_KEYS if k in previous}
    report = build_report(root, sizes, extra)
    report["contact_sheet_images"] = contact_sheet(root, root / "contact_sheet.png", seed=seed)
    (root / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (root / "report.txt").write_text(report_text(report), encoding="utf-8")
    return report
