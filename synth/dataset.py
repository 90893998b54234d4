"""Build an Ultralytics detection dataset from the randomised scenario family.

Frames are sampled from many short random scenes (a few frames each) rather than from long clips,
because variety of camera, street and look matters far more to a detector than frame count.
Train and validation scenes come from disjoint random streams, so no scene leaks across splits.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gridwatch.synth.actors import CLASSES
from gridwatch.synth.random_scene import random_scenario
from gridwatch.synth.render import RenderedFrame
from gridwatch.synth.scene import Scene


@dataclass(frozen=True)
class DatasetSummary:
    root: Path
    data_yaml: Path
    train_images: int
    val_images: int
    instances: dict[str, int]
    seconds: float


def sample_frames(seed: int, count: int, frames_per_scene: int = 3, duration_s: float = 8.0) -> Iterator[RenderedFrame]:
    """``count`` labelled frames from random scenes drawn from ``seed``'s stream."""
    rng = np.random.default_rng(seed)
    made = 0
    scene_no = 0
    while made < count:
        scene = Scene.compile(random_scenario(rng, duration_s, name=f"r{seed}_{scene_no}"))
        for t in np.sort(rng.uniform(0.3, duration_s, frames_per_scene)):
            if made >= count:
                break
            yield scene.frame_at(float(t), made)
            made += 1
        scene_no += 1


def write_yolo_labels(path: Path, frame: RenderedFrame) -> None:
    h, w = frame.image.shape[:2]
    lines = []
    for lb in frame.labels:
        c, cx, cy, bw, bh = lb.yolo(w, h)
        lines.append(f"{c} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")


def _progress(split: str, done: int, total: int, started: float, enabled: bool) -> None:
    if not enabled or (done % 50 and done != total):
        return
    rate = done / max(1e-6, time.monotonic() - started)
    print(
        f"\r[synth] {split}: {done}/{total} images ({rate:.1f}/s)", end="\n" if done == total else "", file=sys.stderr
    )


def _write_split(root: Path, split: str, seed: int, count: int, counts: dict[str, int], progress: bool) -> None:
    img_dir, lbl_dir = root / "images" / split, root / "labels" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for i, frame in enumerate(sample_frames(seed, count)):
        stem = f"{split}_{i:06d}"
        cv2.imwrite(str(img_dir / f"{stem}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        write_yolo_labels(lbl_dir / f"{stem}.txt", frame)
        for lb in frame.labels:
            counts[CLASSES[lb.class_id]] += 1
        _progress(split, i + 1, count, started, progress)


def write_data_yaml(root: Path) -> Path:
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASSES))
    text = f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
    path = root / "data.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def build_dataset(
    out_dir: str | Path, n_train: int, n_val: int, seed: int = 0, progress: bool = False
) -> DatasetSummary:
    """Write ``images/{train,val}``, ``labels/{train,val}`` and ``data.yaml`` under ``out_dir``.

    Validation uses the stream ``seed + 1_000_003`` so its scenes never repeat training scenes.
    Images are 640x360 (80%) or 640x480 (20%), as the edge cameras deliver them; the trainer letterboxes.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(CLASSES, 0)
    started = time.monotonic()
    _write_split(root, "train", seed, n_train, counts, progress)
    _write_split(root, "val", seed + 1_000_003, n_val, counts, progress)
    data_yaml = write_data_yaml(root)
    return DatasetSummary(root, data_yaml, n_train, n_val, counts, time.monotonic() - started)
