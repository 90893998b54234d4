"""`gridwatch models eval`: a model's accuracy on a labelled split, through the edge's own ONNX runtime.

What is measured is what a gateway runs: `OnnxDetector` (same letterbox, decoder, NMS) at a low confidence
threshold, scored with `detection_metrics` (COCO-style AP). Classes are matched **by name** between model and
data: a model class the data does not label is ignored, a data class the model lacks is reported as such.

With a baseline (the deployed model), both run on the same images and each class gets a plain verdict:
``better`` / ``worse`` when AP50 moved by more than the margin, else ``unchanged``; ``new class`` when the
baseline cannot detect it, ``first model`` when there is no baseline.

With ``tta="flip"`` or ``"multiscale"`` (`--tta ...`) the model runs as a gateway with that `tta` runs it
(`gridwatch.models.tta`: several views of the image, merged by class-aware NMS at the evaluation IoU); its name then
ends in ``+ flip TTA`` / ``+ multiscale TTA``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gridwatch.models.base import Detector, ModelConfigError
from gridwatch.models.detection_metrics import DetectionEvaluator, DetectionResult
from gridwatch.models.onnx_backend import OnnxDetector
from gridwatch.models.tta import TtaDetector, tta_label, with_tta
from gridwatch.models.yolo_data import read_labels

EVAL_CONF = 0.001  # AP needs the whole ranking (Ultralytics' val uses the same)
EVAL_IOU = 0.6  # NMS IoU during evaluation
DEFAULT_MARGIN = 0.02  # AP50 change (absolute) that counts as a difference


@dataclass(frozen=True)
class ModelEval:
    """One model on one split: its identity, the metrics per data class, and the data classes it lacks."""

    model: str
    sha256: str
    result: DetectionResult
    missing: list[str]
    tta: str = "none"  # test-time augmentation it ran with ('none' / 'flip' / 'multiscale')

    def ap50(self, name: str) -> float | None:
        """AP50 of a data class, None when the model cannot detect it."""
        return None if name in self.missing else self.result.by_name()[name].ap50

    def ap50_95(self, name: str) -> float | None:
        return None if name in self.missing else self.result.by_name()[name].ap50_95


def class_mapping(model_classes: Sequence[str], data_classes: Sequence[str]) -> dict[int, int]:
    """model class id -> data class id, for the names both have. Raise ModelConfigError when none is shared."""
    mapping = {i: list(data_classes).index(n) for i, n in enumerate(model_classes) if n in data_classes}
    if not mapping:
        raise ModelConfigError(
            f"the model's classes {list(model_classes)} share no name with the data's {list(data_classes)}; "
            "classes are matched by name, so rename them in the manifest or the data YAML"
        )
    return mapping


def evaluate_detector(
    detector: Detector,
    images: Sequence[Path],
    data_classes: Sequence[str],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ModelEval:
    """Run `detector` on every image (BGR from disk), score it against the YOLO labels next to the images."""
    model_classes = list(detector.info.class_names)
    mapping = class_mapping(model_classes, data_classes)
    lut = np.full(len(model_classes), -1, dtype=np.int64)
    for m, d in mapping.items():
        lut[m] = d
    evaluator = DetectionEvaluator(data_classes)
    for k, path in enumerate(images):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ModelConfigError(f"cannot read image {path}")
        gt_xyxy, gt_cls = read_labels(path, (image.shape[1], image.shape[0]), len(data_classes))
        det = detector.detect(image)
        ids = lut[np.asarray(det.class_id, dtype=np.int64)] if len(det) else np.zeros(0, dtype=np.int64)
        keep = ids >= 0
        conf = det.confidence if det.confidence is not None else np.ones(len(det))
        evaluator.add(det.xyxy[keep], conf[keep], ids[keep], gt_xyxy, gt_cls)
        if progress is not None:
            progress(k + 1, len(images))
    missing = [n for n in data_classes if n not in model_classes]
    tta = detector.mode if isinstance(detector, TtaDetector) else "none"
    name = detector.info.name + " " + detector.info.version + ("" if tta == "none" else f" + {tta_label(tta)}")
    return ModelEval(name, detector.info.sha256, evaluator.result(), missing, tta)


def load_for_eval(model: str | Path, threads: int | None = None, tta: str = "none") -> Detector:
    """The detector as the edge would load it (manifest next to the model, sha256 checked), at eval thresholds,
    with test-time augmentation `tta` ('none', 'flip' or 'multiscale', like a detector entry's `tta`)."""
    detector = OnnxDetector.from_path(model, conf_threshold=EVAL_CONF, iou_threshold=EVAL_IOU, threads=threads)
    return with_tta(detector, tta, EVAL_IOU)


@dataclass(frozen=True)
class ClassRow:
    name: str
    n_gt: int
    ap50: float | None
    ap50_95: float | None
    base_ap50: float | None
    base_ap50_95: float | None
    verdict: str


def verdict(new: float | None, base: float | None, margin: float, *, has_baseline: bool) -> str:
    """better / worse / unchanged by AP50 `margin`; 'not in model', 'new class', 'first model', 'no labels'."""
    if new is None:
        return "not in model"
    if math.isnan(new):
        return "no labels"
    if not has_baseline:
        return "first model"
    if base is None:
        return "new class"
    if new > base + margin:
        return "better"
    if new < base - margin:
        return "worse"
    return "unchanged"


def compare(new: ModelEval, baseline: ModelEval | None, margin: float = DEFAULT_MARGIN) -> list[ClassRow]:
    """One row per data class: the new model's AP, the baseline's, and the verdict."""
    rows = []
    for c in new.result.classes:
        base50 = baseline.ap50(c.name) if baseline else None
        base5095 = baseline.ap50_95(c.name) if baseline else None
        rows.append(ClassRow(c.name, c.n_gt, new.ap50(c.name), new.ap50_95(c.name), base50, base5095,
                             verdict(new.ap50(c.name), base50, margin, has_baseline=baseline is not None)))
    return rows


def _fmt(v: float | None) -> str:
    return "   -  " if v is None or math.isnan(v) else f"{v:6.3f}"


def table(rows: Sequence[ClassRow], new: ModelEval, baseline: ModelEval | None, margin: float) -> str:
    """The side-by-side text table `models eval` prints."""
    lines = [f"model:    {new.model} (sha256 {new.sha256[:12]}), {new.result.images} images"]
    if baseline:
        lines.append(f"baseline: {baseline.model} (sha256 {baseline.sha256[:12]})")
    head = f"{'class':14} {'boxes':>6} {'AP50':>6} {'AP50-95':>7}"
    if baseline:
        head += f" {'base AP50':>9} {'base 50-95':>10}"
    lines.append(head + "  verdict")
    for r in rows:
        line = f"{r.name:14} {r.n_gt:6d} {_fmt(r.ap50)} {_fmt(r.ap50_95):>7}"
        if baseline:
            line += f" {_fmt(r.base_ap50):>9} {_fmt(r.base_ap50_95):>10}"
        lines.append(line + f"  {r.verdict}")
    lines.append(f"mAP50 {_fmt(new.result.map50).strip()}  mAP50-95 {_fmt(new.result.map50_95).strip()}"
                 + (f"  (baseline mAP50 over the classes it has: {_fmt(baseline.result.map50).strip()})"
                    if baseline else ""))
    lines.append(f"verdict: AP50 more than {margin:.2f} above/below the baseline = better/worse, else unchanged")
    return "\n".join(lines)


def _num(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(float(v), 4)


def metrics_dict(new: ModelEval, split: str, data_yaml: Path) -> dict[str, Any]:
    """The manifest's `metrics` block for this evaluation."""
    return {
        "data": str(data_yaml),
        "split": split,
        "images": new.result.images,
        "mAP50": _num(new.result.map50),
        "mAP50_95": _num(new.result.map50_95),
        "per_class_mAP50": {c.name: _num(new.ap50(c.name)) for c in new.result.classes},
        "per_class_mAP50_95": {c.name: _num(new.ap50_95(c.name)) for c in new.result.classes},
        "tta": new.tta,
        "evaluated_with": f"gridwatch models eval (ONNX Runtime, conf {EVAL_CONF}, NMS IoU {EVAL_IOU}, COCO 101-point"
        + (f", {tta_label(new.tta)} merged by NMS at the same IoU)" if new.tta != "none" else ")"),
    }


def report_dict(rows: Sequence[ClassRow], new: ModelEval, baseline: ModelEval | None, margin: float,
                split: str, data_yaml: Path) -> dict[str, Any]:
    """Everything `models eval` found, for `--json`."""
    return {
        "model": new.model, "sha256": new.sha256,
        "baseline": baseline.model if baseline else None,
        "baseline_sha256": baseline.sha256 if baseline else None,
        "baseline_tta": baseline.tta if baseline else None,
        "margin_ap50": margin,
        "metrics": metrics_dict(new, split, data_yaml),
        "baseline_mAP50": _num(baseline.result.map50) if baseline else None,
        "classes": [
            {"name": r.name, "boxes": r.n_gt, "ap50": _num(r.ap50), "ap50_95": _num(r.ap50_95),
             "baseline_ap50": _num(r.base_ap50), "baseline_ap50_95": _num(r.base_ap50_95), "verdict": r.verdict}
            for r in rows
        ],
        "confusion_matrix": new.result.confusion.tolist(),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
