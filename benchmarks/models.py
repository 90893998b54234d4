"""Accuracy of the shipped models against the models they replace, through the edge's ONNX runtime (no torch).

    python benchmarks/models.py --json out/models.json [--images 200] [--seed 4242] [--limit N]

1. Street model (`models/street/*.onnx`, not `*-int8`): AP50 / AP50-95 per class on `garbage_cn_street/val`
   (the shared real data, `$GRIDWATCH_SHARED/data/real`). Goal: AP50 >= 0.6 for `garbage` and for `overflow`.
   Side by side with the version it replaced (the previous committed street ONNX, read from git) on the same
   photos, with a verdict per class; the first street version replaced nothing that could see garbage
   (YOLOX-Nano has no garbage/bin/overflow class). When `models/street/` has no model the goals are reported as
   not met with "model missing"; the benchmark does not fail.
2. Demo model (`models/demo/`): mAP50 on freshly generated synthetic images (a seed training never used), side
   by side with the version it replaced (the previous committed `models/demo` ONNX, read from git) on the same
   images, with a verdict per class. Goal: mAP50 >= 0.5.

Evaluation is `gridwatch models eval`'s (`gridwatch.models.evaluate`: conf 0.001, NMS IoU 0.6, COCO 101-point AP,
classes matched by name).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gridwatch.errors import GridwatchError  # noqa: E402
from gridwatch.models.evaluate import ModelEval, compare, evaluate_detector, load_for_eval, table  # noqa: E402
from gridwatch.models.yolo_data import load_dataset  # noqa: E402

STREET_DIR = REPO / "models" / "street"
DEMO_MODEL = REPO / "models" / "demo" / "gridwatch-demo-yolo11n.onnx"
STREET_GOAL_CLASSES = ("garbage", "overflow")
STREET_TARGET = 0.6
DEMO_TARGET = 0.5
MARGIN = 0.02


def shared_real() -> Path:
    return Path(os.environ.get("GRIDWATCH_SHARED", str(REPO.parent / "shared"))) / "data" / "real"


def street_model(folder: Path = STREET_DIR) -> Path | None:
    """The float street model in `folder` (an .onnx with its manifest, not the -int8 copy), or None."""
    found = sorted(p for p in folder.glob("*.onnx")
                   if not p.stem.endswith("-int8") and p.with_suffix(".json").is_file())
    return found[0] if found else None


def _round(v: float | None) -> float | None:
    return None if v is None or v != v else round(float(v), 4)


def _not_met(note: str) -> list[dict[str, Any]]:
    return [{"name": f"street_ap50[{c}]", "value": None, "target": STREET_TARGET, "unit": "AP50", "met": False,
             "note": note} for c in STREET_GOAL_CLASSES]


def street_goals(model: Path | None, data: Path, limit: int | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Goals and details for the street model; goals not met, with the reason, when it cannot be measured."""
    if model is None:
        print("street model: missing (no .onnx with a manifest in models/street/); goals not met")
        return _not_met("model missing: no .onnx with a manifest in models/street/"), {"model": None}
    try:
        return _measure_street(model, data, limit)
    except GridwatchError as exc:  # a model that does not load, data that is not there: a result, not a crash
        print(f"street model: cannot be measured: {exc}")
        return _not_met(f"cannot be measured: {exc}"), {"model": str(model), "error": str(exc)}


def _measure_street(model: Path, data: Path, limit: int | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    detector = load_for_eval(model)  # first: a model that does not load is the news, not the data
    dataset = load_dataset(data)
    images = dataset.images("val")[:limit] if limit else dataset.images("val")
    new = evaluate_detector(detector, images, dataset.names)
    baseline = _street_baseline(model, images, dataset.names)
    rows = compare(new, baseline, MARGIN)
    print(table(rows, new, baseline, MARGIN))
    if baseline is None:
        print("baseline: none (the first street model; YOLOX-Nano, the detector it runs beside, has no garbage, "
              "garbage_bin or overflow class)")
    goals = []
    for c in STREET_GOAL_CLASSES:
        v = new.ap50(c)
        goals.append({"name": f"street_ap50[{c}]", "value": _round(v), "target": STREET_TARGET, "unit": "AP50",
                      "met": v is not None and v >= STREET_TARGET,
                      "baseline": _round(baseline.ap50(c)) if baseline else None,
                      "note": "against the previous committed version" if baseline else "first model"})
    details = {"model": str(model), "sha256": new.sha256, "images": len(images),
               "mAP50": _round(new.result.map50), "mAP50_95": _round(new.result.map50_95),
               "baseline_sha256": baseline.sha256 if baseline else None,
               "baseline_mAP50": _round(baseline.result.map50) if baseline else None,
               "per_class": [{"name": r.name, "ap50": _round(r.ap50), "ap50_95": _round(r.ap50_95),
                              "baseline_ap50": _round(r.base_ap50), "verdict": r.verdict} for r in rows]}
    return goals, details


def _street_baseline(model: Path, images: list[Path], names: list[str]) -> ModelEval | None:
    """The street model this one replaced (previous committed version), evaluated on the same photos."""
    with tempfile.TemporaryDirectory(prefix="gridwatch-street-prev-") as tmp:
        prev = previous_version(model, Path(tmp))
        if prev is None:
            return None
        base = evaluate_detector(load_for_eval(prev), images, names)
    return ModelEval(base.model + " (previous commit)", base.sha256, base.result, base.missing)


def previous_version(model: Path, into: Path) -> Path | None:
    """The last committed version of `model` (and its manifest) that differs from HEAD's, from git; None if none."""
    rel = model.relative_to(REPO).as_posix()
    try:
        log = subprocess.run(["git", "-C", str(REPO), "log", "--format=%H", "--", rel], capture_output=True,
                             text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    if len(log) < 2:
        return None
    out = into / model.name
    for suffix in (".onnx", ".json"):
        blob = subprocess.run(["git", "-C", str(REPO), "show", f"{log[1]}:{Path(rel).with_suffix(suffix).as_posix()}"],
                              capture_output=True, check=False)
        if blob.returncode != 0:
            return None
        out.with_suffix(suffix).write_bytes(blob.stdout)
    return out


def fresh_synthetic(n: int, seed: int, root: Path) -> Path:
    from gridwatch.synth import build_dataset

    build_dataset(root, 0, n, seed=seed, progress=True)
    return root / "data.yaml"


def demo_goals(images: int, seed: int, work: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    dataset = load_dataset(fresh_synthetic(images, seed, work / "synthetic"))
    val = dataset.images("val")
    new = evaluate_detector(load_for_eval(DEMO_MODEL), val, dataset.names)
    prev_path = previous_version(DEMO_MODEL, work)
    baseline: ModelEval | None = None
    if prev_path is not None:
        baseline = evaluate_detector(load_for_eval(prev_path), val, dataset.names)
        baseline = ModelEval(baseline.model + " (previous commit)", baseline.sha256, baseline.result,
                             baseline.missing)
    rows = compare(new, baseline, MARGIN)
    print(table(rows, new, baseline, MARGIN))
    v = new.result.map50
    goals = [{"name": "demo_model_map50_fresh", "value": _round(v), "target": DEMO_TARGET, "unit": "mAP50",
              "met": bool(v >= DEMO_TARGET),
              "baseline": _round(baseline.result.map50) if baseline else None}]
    details = {"sha256": new.sha256, "baseline_sha256": baseline.sha256 if baseline else None, "images": len(val),
               "seed": seed,
               "per_class": [{"name": r.name, "ap50": _round(r.ap50), "baseline_ap50": _round(r.base_ap50),
                              "verdict": r.verdict} for r in rows]}
    return goals, details


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--images", type=int, default=200, help="fresh synthetic images for the demo model")
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--limit", type=int, default=None, help="only the first N street val images (quick look)")
    parser.add_argument("--street-dir", type=Path, default=STREET_DIR)
    args = parser.parse_args(argv)

    street, street_info = street_goals(street_model(args.street_dir), shared_real() / "garbage_cn_street",
                                       args.limit)
    with tempfile.TemporaryDirectory(prefix="gridwatch-models-bench-") as tmp:
        demo, demo_info = demo_goals(args.images, args.seed, Path(tmp))
    goals = street + demo
    for g in goals:
        print(f"goal {g['name']}: {g['value']} (target >= {g['target']}) {'met' if g['met'] else 'NOT met'}"
              + (f" [{g['note']}]" if g.get("note") else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"goals": goals, "street": street_info, "demo": demo_info}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
