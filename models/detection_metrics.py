"""Detection accuracy: COCO-style AP (101 recall points) per class at IoU 0.50:0.95, PR curves, confusion matrix.

Pure numpy, no I/O. One `DetectionEvaluator` collects, image by image, the predictions (in ground-truth pixel
coordinates) and the ground-truth boxes; `result()` turns them into a `DetectionResult`.

What the numbers mean (the COCO definitions, as in pycocotools):

- Matching, per image, class and IoU threshold: predictions in descending confidence each take the unmatched
  ground-truth box of the same class with the highest IoU, if that IoU is >= the threshold; otherwise it is a
  false positive. A ground-truth box matches at most one prediction.
- AP: the precision envelope (precision made monotone from the right) read at 101 recall points 0, 0.01, ..., 1
  (0 past the highest recall reached), averaged. AP50 is at IoU 0.5; AP50-95 averages AP over the ten thresholds
  0.50, 0.55, ..., 0.95. A class with no ground truth has no AP (NaN) and is left out of the mean.
- Differences from pycocotools: no area ranges, no crowd boxes, and all predictions count (the caller caps them;
  the edge keeps at most 300 per image, COCO keeps 100).

The confusion matrix uses the operating point instead (confidence >= `conf`, class-agnostic matching at IoU >=
`iou`, best IoU first), with an extra "background" row and column for misses and false alarms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IOU_THRESHOLDS = np.round(np.linspace(0.5, 0.95, 10), 2)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box in `a` (N, 4) with every one in `b` (M, 4): (N, M)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0))


def match_greedy(pred_xyxy: np.ndarray, pred_conf: np.ndarray, gt_xyxy: np.ndarray,
                 thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """(n_pred, n_thresholds) bool: True where the prediction is a true positive at that IoU threshold.

    All boxes are of one class in one image. Predictions are visited in descending confidence (stable for ties);
    each takes the best-IoU ground truth still free at that threshold.
    """
    tp = np.zeros((len(pred_xyxy), len(thresholds)), dtype=bool)
    if len(pred_xyxy) == 0 or len(gt_xyxy) == 0:
        return tp
    ious = box_iou(pred_xyxy, gt_xyxy)
    order = np.argsort(-np.asarray(pred_conf), kind="stable")
    for t, thr in enumerate(thresholds):
        free = np.ones(len(gt_xyxy), dtype=bool)
        for i in order:
            cand = np.where(free, ious[i], -1.0)
            j = int(np.argmax(cand))
            if cand[j] >= thr - 1e-12:
                tp[i, t], free[j] = True, False
    return tp


@dataclass(frozen=True)
class PRCurve:
    """Recall and enveloped precision in descending-confidence order (the points AP is read from)."""

    recall: np.ndarray
    precision: np.ndarray


def pr_curve(tp: np.ndarray, conf: np.ndarray, n_gt: int) -> PRCurve:
    """The precision/recall points of one class at one threshold; precision is the monotone envelope."""
    order = np.argsort(-np.asarray(conf), kind="stable")
    hits = np.asarray(tp, dtype=bool)[order]
    tps, fps = np.cumsum(hits), np.cumsum(~hits)
    recall = tps / max(n_gt, 1)
    precision = tps / np.maximum(tps + fps, 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    return PRCurve(recall.astype(np.float64), envelope.astype(np.float64))


def average_precision(tp: np.ndarray, conf: np.ndarray, n_gt: int) -> float:
    """COCO 101-point AP of one class at one IoU threshold; NaN when the class has no ground truth."""
    if n_gt == 0:
        return float("nan")
    curve = pr_curve(tp, conf, n_gt)
    idx = np.searchsorted(curve.recall, RECALL_POINTS, side="left")
    padded = np.concatenate([curve.precision, [0.0]])
    return float(np.mean(padded[idx]))


@dataclass(frozen=True)
class ClassResult:
    name: str
    n_gt: int
    n_pred: int
    ap50: float
    ap50_95: float
    pr50: PRCurve


@dataclass(frozen=True)
class DetectionResult:
    """Per-class results (in the evaluator's class order) and the confusion matrix.

    `confusion[i, j]` counts ground truth of class i (row; last row = background, i.e. a false alarm) predicted
    as class j (column; last column = background, i.e. a miss).
    """

    classes: list[ClassResult]
    confusion: np.ndarray
    images: int
    conf: float
    iou: float

    def by_name(self) -> dict[str, ClassResult]:
        return {c.name: c for c in self.classes}

    @property
    def map50(self) -> float:
        return _nanmean([c.ap50 for c in self.classes])

    @property
    def map50_95(self) -> float:
        return _nanmean([c.ap50_95 for c in self.classes])


def _nanmean(values: Sequence[float]) -> float:
    valid = [v for v in values if not np.isnan(v)]
    return float(np.mean(valid)) if valid else float("nan")


class DetectionEvaluator:
    """Accumulate predictions and ground truth image by image; `result()` computes the metrics.

    Class ids index `class_names`; predictions of ids outside it must be dropped by the caller (they belong to
    classes the data set does not label). `conf` and `iou` set the confusion matrix's operating point.
    """

    def __init__(self, class_names: Sequence[str], conf: float = 0.25, iou: float = 0.45) -> None:
        self.class_names = list(class_names)
        self.conf, self.iou = conf, iou
        nc = len(self.class_names)
        self._tp: list[list[np.ndarray]] = [[] for _ in range(nc)]
        self._scores: list[list[np.ndarray]] = [[] for _ in range(nc)]
        self._n_gt = np.zeros(nc, dtype=np.int64)
        self._confusion = np.zeros((nc + 1, nc + 1), dtype=np.int64)
        self.images = 0

    def add(self, pred_xyxy: np.ndarray, pred_conf: np.ndarray, pred_cls: np.ndarray,
            gt_xyxy: np.ndarray, gt_cls: np.ndarray) -> None:
        """One image: predictions (xyxy, confidence, class id) and ground truth (xyxy, class id), same pixels."""
        pred_xyxy = np.asarray(pred_xyxy, dtype=np.float64).reshape(-1, 4)
        pred_conf = np.asarray(pred_conf, dtype=np.float64).reshape(-1)
        pred_cls = np.asarray(pred_cls, dtype=np.int64).reshape(-1)
        gt_xyxy = np.asarray(gt_xyxy, dtype=np.float64).reshape(-1, 4)
        gt_cls = np.asarray(gt_cls, dtype=np.int64).reshape(-1)
        nc = len(self.class_names)
        for ids, what in ((pred_cls, "prediction"), (gt_cls, "ground-truth")):
            if ids.size and (ids.min() < 0 or ids.max() >= nc):
                raise ValueError(f"{what} class id out of range 0..{nc - 1}: {sorted(set(ids.tolist()))}")
        self.images += 1
        for c in range(nc):
            p, g = pred_cls == c, gt_cls == c
            self._n_gt[c] += int(g.sum())
            self._scores[c].append(pred_conf[p])
            self._tp[c].append(match_greedy(pred_xyxy[p], pred_conf[p], gt_xyxy[g]))
        keep = pred_conf >= self.conf
        self._add_confusion(pred_xyxy[keep], pred_cls[keep], gt_xyxy, gt_cls)

    def _add_confusion(self, pred_xyxy: np.ndarray, pred_cls: np.ndarray, gt_xyxy: np.ndarray,
                       gt_cls: np.ndarray) -> None:
        bg = len(self.class_names)
        ious = box_iou(gt_xyxy, pred_xyxy)
        gi, pi = np.nonzero(ious >= self.iou)
        order = np.argsort(-ious[gi, pi], kind="stable")
        used_g: set[int] = set()
        used_p: set[int] = set()
        for k in order:
            g, p = int(gi[k]), int(pi[k])
            if g in used_g or p in used_p:
                continue
            used_g.add(g)
            used_p.add(p)
            self._confusion[gt_cls[g], pred_cls[p]] += 1
        for g in set(range(len(gt_cls))) - used_g:
            self._confusion[gt_cls[g], bg] += 1
        for p in set(range(len(pred_cls))) - used_p:
            self._confusion[bg, pred_cls[p]] += 1

    def result(self) -> DetectionResult:
        classes = []
        for c, name in enumerate(self.class_names):
            scores = np.concatenate(self._scores[c]) if self._scores[c] else np.zeros(0)
            tp = np.concatenate(self._tp[c]) if self._tp[c] else np.zeros((0, len(IOU_THRESHOLDS)), dtype=bool)
            n_gt = int(self._n_gt[c])
            aps = [average_precision(tp[:, t], scores, n_gt) for t in range(len(IOU_THRESHOLDS))]
            classes.append(ClassResult(name, n_gt, len(scores), aps[0], float(np.mean(aps)),
                                       pr_curve(tp[:, 0], scores, n_gt)))
        return DetectionResult(classes, self._confusion.copy(), self.images, self.conf, self.iou)
