"""COCO-style AP checked on hand-computed cases and cross-checked against supervision's pycocotools port."""

from __future__ import annotations

import math

import numpy as np
import pytest
import supervision as sv
from supervision.metrics import MeanAveragePrecision

from gridwatch.models.detection_metrics import DetectionEvaluator, average_precision, box_iou, match_greedy

BOX = np.array([[10.0, 10.0, 50.0, 50.0]])


def _box_with_iou(iou: float) -> np.ndarray:
    """A box of the same height as BOX, shifted right so its IoU with BOX is `iou`."""
    # overlap (40 - s) * 40, union 2 * 1600 - overlap -> iou = (40 - s) / (40 + s)
    s = 40 * (1 - iou) / (1 + iou)
    return BOX + np.array([[s, 0.0, s, 0.0]])


def test_iou_of_a_shifted_box_is_what_the_helper_promises() -> None:
    assert box_iou(BOX, _box_with_iou(0.72))[0, 0] == pytest.approx(0.72)
    assert box_iou(BOX, BOX + 100)[0, 0] == 0.0


def test_one_perfect_detection_is_ap_one_at_every_threshold() -> None:
    ev = DetectionEvaluator(["garbage"])
    ev.add(BOX, [0.9], [0], BOX, [0])
    r = ev.result().classes[0]
    assert (r.ap50, r.ap50_95) == (1.0, 1.0)


def test_hand_computed_101_point_ap() -> None:
    # 2 ground truths; detections by confidence: TP, FP, TP -> (recall, precision) (0.5, 1), (0.5, 0.5), (1, 2/3).
    # The envelope is 1 for recall 0..0.5 (51 points) and 2/3 for 0.51..1 (50 points).
    ap = average_precision(np.array([True, False, True]), np.array([0.9, 0.8, 0.7]), 2)
    assert ap == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_recall_never_reached_counts_zero() -> None:
    # 4 ground truths, one hit: precision 1 up to recall 0.25 (26 points), 0 after.
    assert average_precision(np.array([True]), np.array([0.5]), 4) == pytest.approx(26 / 101)


def test_no_ground_truth_is_nan_and_left_out_of_the_mean() -> None:
    ev = DetectionEvaluator(["garbage", "overflow"])
    ev.add(BOX, [0.9], [0], BOX, [0])
    ev.add(BOX, [0.9], [1], np.zeros((0, 4)), [])  # a false alarm of a class the data never labels
    res = ev.result()
    assert math.isnan(res.classes[1].ap50)
    assert res.map50 == 1.0


def test_ap50_95_counts_the_thresholds_a_loose_box_passes() -> None:
    # IoU 0.72 passes 0.50, 0.55, 0.60, 0.65, 0.70 (5 of 10).
    ev = DetectionEvaluator(["garbage"])
    ev.add(_box_with_iou(0.72), [0.9], [0], BOX, [0])
    r = ev.result().classes[0]
    assert r.ap50 == 1.0 and r.ap50_95 == pytest.approx(0.5)


def test_a_duplicate_is_a_false_positive_and_the_better_scored_box_wins() -> None:
    tp = match_greedy(np.vstack([_box_with_iou(0.6), BOX]), np.array([0.9, 0.8]), BOX)
    assert tp[:, 0].tolist() == [True, False]  # at 0.5 the first (higher confidence) box takes the truth
    assert tp[:, -1].tolist() == [False, True]  # at 0.95 only the exact box matches


def test_wrong_class_is_a_miss_and_a_false_alarm_in_the_confusion_matrix() -> None:
    ev = DetectionEvaluator(["garbage", "garbage_bin", "overflow"], conf=0.25, iou=0.45)
    ev.add(np.vstack([BOX, BOX + 200]), [0.9, 0.1], [2, 0], np.vstack([BOX, BOX + 100]), [1, 0])
    res = ev.result()
    cm = res.confusion
    assert cm[1, 2] == 1  # a bin predicted as overflow
    assert cm[0, 3] == 1  # garbage missed (the 0.1 box is below the operating confidence)
    assert cm.sum() == 2
    assert res.classes[1].ap50 == 0.0 and res.classes[0].ap50 == 0.0


def test_class_ids_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="prediction class id out of range"):
        DetectionEvaluator(["garbage"]).add(BOX, [0.9], [3], BOX, [0])


def _random_fixture(seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Images with jittered, dropped, mislabelled and spurious predictions of 3 classes (all boxes valid:
    supervision drops a box with x2 < x1 as out of its area range, we count it as a false positive)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(40):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 500, (n, 2))
        wh = rng.uniform(20, 120, (n, 2))
        gt = np.hstack([xy, xy + wh])
        gt_cls = rng.integers(0, 3, n)
        keep = rng.random(n) > 0.2
        pred = gt[keep] + rng.normal(0, 8, (int(keep.sum()), 4))
        pred_cls = np.where(rng.random(int(keep.sum())) < 0.85, gt_cls[keep], rng.integers(0, 3, int(keep.sum())))
        k = int(rng.integers(0, 3))
        fxy = rng.uniform(0, 500, (k, 2))
        pred = np.vstack([pred, np.hstack([fxy, fxy + rng.uniform(20, 100, (k, 2))])])
        pred_cls = np.concatenate([pred_cls, rng.integers(0, 3, k)])
        pred = np.hstack([np.minimum(pred[:, :2], pred[:, 2:] - 1), np.maximum(pred[:, 2:], pred[:, :2] + 1)])
        conf = rng.uniform(0.05, 1.0, len(pred))
        images.append((pred, conf, pred_cls, gt, gt_cls))
    return images


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_matches_supervisions_pycocotools_port(seed: int) -> None:
    images = _random_fixture(seed)
    ours = DetectionEvaluator(["a", "b", "c"])
    theirs = MeanAveragePrecision()
    for pred, conf, pred_cls, gt, gt_cls in images:
        ours.add(pred, conf, pred_cls, gt, gt_cls)
        theirs.update(
            sv.Detections(xyxy=pred.astype(np.float32), confidence=conf.astype(np.float32),
                          class_id=pred_cls.astype(int)),
            sv.Detections(xyxy=gt.astype(np.float32), class_id=gt_cls.astype(int)),
        )
    ref = theirs.compute()
    res = ours.result()
    assert res.map50 == pytest.approx(ref.map50, abs=1e-6)
    assert res.map50_95 == pytest.approx(ref.map50_95, abs=1e-6)
    ref_per_class = dict(zip(ref.matched_classes.tolist(), ref.ap_per_class[:, 0].tolist(), strict=True))
    for c, r in enumerate(res.classes):
        assert r.ap50 == pytest.approx(ref_per_class[c], abs=1e-6), r.name
