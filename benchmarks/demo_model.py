"""Accuracy of the shipped demo detector, measured with ONNX Runtime (no torch) on data it never saw.

    python benchmarks/demo_model.py --json out/demo_model.json [--images 200] [--seed 4242]

1. Renders a fresh validation set from the randomised synthetic family with a seed the training did not use.
2. Runs `models/demo/gridwatch-demo-yolo11n.onnx` through the edge's own `OnnxDetector` (conf 0.001 for AP).
3. Computes per-class AP50 (all-point interpolation, VOC/COCO style) and mAP50, and recall at the edge's
   operating threshold (conf 0.3) per class.
4. Also measures recall per class on every frame of the demo clip (labels from the generator) at conf 0.3.

Baseline in the same run: the mAP50 the training run reported on its own validation set (from the manifest);
the ratio fresh / reported shows how well it generalises to unseen scenes. Goals: mAP50 >= 0.5 on fresh data,
and demo-clip recall >= 0.8 for the classes the demo incidents need (car, litter, stall, wire).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gridwatch.models.manifest import load_manifest  # noqa: E402
from gridwatch.models.onnx_backend import OnnxDetector  # noqa: E402

MODEL = REPO / "models" / "demo" / "gridwatch-demo-yolo11n.onnx"
SCENARIO = REPO / "synth" / "scenarios" / "demo.yaml"
IOU = 0.5
OPERATING_CONF = 0.3
TARGET_MAP50 = 0.5
TARGET_RECALL = 0.8
DEMO_CLASSES = ("car", "litter", "stall", "wire")


def read_labels(path: Path, w: int, h: int) -> np.ndarray:
    """(N, 5): class, x1, y1, x2, y2 in pixels."""
    rows = [list(map(float, line.split())) for line in path.read_text().splitlines() if line.strip()]
    arr = np.array(rows, dtype=float).reshape(-1, 5)
    cx, cy, bw, bh = arr[:, 1] * w, arr[:, 2] * h, arr[:, 3] * w, arr[:, 4] * h
    return np.stack([arr[:, 0], cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9))


def match(pred_xyxy: np.ndarray, pred_conf: np.ndarray, gt_xyxy: np.ndarray) -> np.ndarray:
    """Greedy by confidence: True for each prediction that matches a not-yet-matched truth box at IoU >= 0.5."""
    tp = np.zeros(len(pred_xyxy), dtype=bool)
    if len(pred_xyxy) == 0 or len(gt_xyxy) == 0:
        return tp
    ious = iou_matrix(pred_xyxy, gt_xyxy)
    used = np.zeros(len(gt_xyxy), dtype=bool)
    for i in np.argsort(-pred_conf):
        j = int(np.argmax(np.where(used, -1, ious[i])))
        if ious[i, j] >= IOU and not used[j]:
            tp[i], used[j] = True, True
    return tp


def average_precision(conf: np.ndarray, tp: np.ndarray, n_gt: int) -> float:
    if n_gt == 0:
        return float("nan")
    order = np.argsort(-conf)
    tps = np.cumsum(tp[order])
    fps = np.cumsum(~tp[order])
    recall = tps / n_gt
    precision = tps / np.maximum(tps + fps, 1e-9)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


class Accumulator:
    def __init__(self, classes: tuple[str, ...]) -> None:
        self.classes = classes
        self.conf: dict[int, list[float]] = {c: [] for c in range(len(classes))}
        self.tp: dict[int, list[bool]] = {c: [] for c in range(len(classes))}
        self.n_gt = dict.fromkeys(range(len(classes)), 0)

    def add(self, det_xyxy: np.ndarray, det_conf: np.ndarray, det_cls: np.ndarray, gt: np.ndarray) -> None:
        for c in range(len(self.classes)):
            g = gt[gt[:, 0] == c, 1:]
            m = det_cls == c
            self.n_gt[c] += len(g)
            self.conf[c].extend(det_conf[m].tolist())
            self.tp[c].extend(match(det_xyxy[m], det_conf[m], g).tolist())

    def ap(self, c: int) -> float:
        return average_precision(np.array(self.conf[c]), np.array(self.tp[c], dtype=bool), self.n_gt[c])

    def recall_at(self, c: int, threshold: float) -> float:
        conf, tp = np.array(self.conf[c]), np.array(self.tp[c], dtype=bool)
        return float(tp[conf >= threshold].sum() / self.n_gt[c]) if self.n_gt[c] else float("nan")


def evaluate(
    detector: OnnxDetector, pairs: list[tuple[np.ndarray, np.ndarray]], classes: tuple[str, ...]
) -> Accumulator:
    acc = Accumulator(classes)
    for image, gt in pairs:
        d = detector.detect(image)
        conf = d.confidence if d.confidence is not None else np.ones(len(d))
        cls = d.class_id if d.class_id is not None else np.zeros(len(d), dtype=int)
        acc.add(d.xyxy, conf, cls, gt)
    return acc


def fresh_val_set(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from gridwatch.synth import build_dataset

    root = Path(tempfile.mkdtemp(prefix="gridwatch-eval-"))
    build_dataset(root, 0, n, seed=seed, progress=True)
    out = []
    for img_path in sorted((root / "images" / "val").glob("*")):
        image = cv2.imread(str(img_path))
        assert image is not None, img_path
        h, w = image.shape[:2]
        out.append((image, read_labels(root / "labels" / "val" / f"{img_path.stem}.txt", w, h)))
    return out


def demo_clip_set() -> list[tuple[np.ndarray, np.ndarray]]:
    from gridwatch.synth.generate import generate

    root = Path(tempfile.mkdtemp(prefix="gridwatch-demo-eval-"))
    video = generate(SCENARIO, root)
    cap = cv2.VideoCapture(str(video))
    out, i = [], 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        h, w = image.shape[:2]
        out.append((image, read_labels(root / "labels" / f"{i:06d}.txt", w, h)))
        i += 1
    cap.release()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=4242)
    args = parser.parse_args(argv)

    manifest = load_manifest(MODEL.with_suffix(".json"))
    classes = tuple(manifest.classes)
    detector = OnnxDetector.from_path(MODEL, conf_threshold=0.001, iou_threshold=0.6)
    fresh = evaluate(detector, fresh_val_set(args.images, args.seed), classes)
    demo = evaluate(detector, demo_clip_set(), classes)

    aps = {c: fresh.ap(i) for i, c in enumerate(classes)}
    valid = [v for v in aps.values() if not np.isnan(v)]
    map50 = float(np.mean(valid)) if valid else 0.0
    reported = float((manifest.metrics or {}).get("mAP50", float("nan")))
    print(f"{'class':8} {'AP50 fresh':>10} {'recall@0.3 fresh':>17} {'recall@0.3 demo clip':>21} {'demo boxes':>10}")
    for i, c in enumerate(classes):
        print(f"{c:8} {aps[c]:10.3f} {fresh.recall_at(i, OPERATING_CONF):17.3f} "
              f"{demo.recall_at(i, OPERATING_CONF):21.3f} {demo.n_gt[i]:10d}")
    print(f"mAP50 on {args.images} fresh images: {map50:.3f} (training-time val mAP50 {reported:.3f}; "
          f"ratio {map50 / reported if reported else float('nan'):.2f})")
    goals: list[dict[str, Any]] = [
        {"name": "demo_model_map50_fresh", "value": round(map50, 4), "target": TARGET_MAP50, "unit": "mAP50",
         "met": map50 >= TARGET_MAP50},
    ]
    for c in DEMO_CLASSES:
        r = demo.recall_at(classes.index(c), OPERATING_CONF)
        goals.append({"name": f"demo_clip_recall[{c}]", "value": round(r, 4), "target": TARGET_RECALL,
                      "unit": "recall@conf0.3,IoU0.5", "met": bool(r >= TARGET_RECALL)})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "goals": goals, "ap50": aps, "reported_map50": reported, "images": args.images, "seed": args.seed,
            "model_sha256": manifest.sha256,
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
