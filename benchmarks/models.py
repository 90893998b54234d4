"""Accuracy of the shipped models against the models they replace, through the edge's ONNX runtime (no torch).

    python benchmarks/models.py --json out/models.json [--images 200] [--seed 4242] [--limit N] [--cost-frames 40]

1. Street model (`models/street/*.onnx`, not `*-int8`): AP50 / AP50-95 per class on `garbage_cn_street/val`
   (the shared real data, `$GRIDWATCH_SHARED/data/real`), without test-time augmentation, with `tta: flip` and
   with `tta: multiscale` (`gridwatch.models.tta`), one row each. Goal: AP50 >= 0.6 for `garbage` and for `overflow`,
   measured on the variant the shipped site config runs (`detectors.street.tta` in
   `deploy/examples/site-two-models.yaml`); each goal row names that variant and carries the others' numbers.
   Side by side with the version it replaced (the previous committed street ONNX, read from git, same variant) on
   the same photos, with a verdict per class; the first street version replaced nothing that could see garbage
   (YOLOX-Nano has no garbage/bin/overflow class). When `models/street/` has no model the goals are reported as
   not met with "model missing"; the benchmark does not fail.
   Cost: ms per 640x360 frame (val photos resized) at 1 inference thread (the shipped config's `threads: 1`),
   without TTA, with flip TTA as one batch of 2, with flip TTA as two runs (the fallback for a fixed-batch
   export) and with multiscale TTA as one batch of 3, interleaved frame by frame in the same run, with the load
   average before and after.
   Street-camera false alarms (a detail, not a goal): the shared real clips (`videos/`: a sidewalk, a kerb, a
   motorway, a parking aisle; none holds a garbage pile, bin or overflowing bin), every 10th frame, at the shipped
   `conf` 0.3: how many frames get any street-class box, per TTA variant (`--clip-every 0` skips it).
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
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from gridwatch.edge.config import parse_site_config  # noqa: E402
from gridwatch.errors import GridwatchError  # noqa: E402
from gridwatch.models.evaluate import ModelEval, compare, evaluate_detector, load_for_eval, table  # noqa: E402
from gridwatch.models.onnx_backend import OnnxDetector  # noqa: E402
from gridwatch.models.tta import FlipTtaDetector, TtaDetector, tta_label  # noqa: E402
from gridwatch.models.yolo_data import load_dataset  # noqa: E402

STREET_DIR = REPO / "models" / "street"
DEMO_MODEL = REPO / "models" / "demo" / "gridwatch-demo-yolo11n.onnx"
DEPLOYED_CONFIG = REPO / "deploy" / "examples" / "site-two-models.yaml"
STREET_GOAL_CLASSES = ("garbage", "overflow")
TTA_VARIANTS = ("none", "flip", "multiscale")
COST_KEY = {"none": "none", "flip": "flip_batch2", "multiscale": "multiscale_batch3"}  # variant -> cost row
COST_WH = (640, 360)
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


def deployed_street_tta(config: Path = DEPLOYED_CONFIG) -> str:
    """The test-time augmentation the shipped site config runs the street model with (`detectors.street.tta`)."""
    cfg = parse_site_config(yaml.safe_load(config.read_text(encoding="utf-8")), str(config))
    spec = cfg.detectors.get("street")
    return spec.tta if spec is not None else "none"


def street_goals(model: Path | None, data: Path, limit: int | None, *, tta: str = "none",
                 cost_frames: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Goals and details for the street model, the goals on variant `tta`; goals not met, with the reason, when it
    cannot be measured."""
    if model is None:
        print("street model: missing (no .onnx with a manifest in models/street/); goals not met")
        return _not_met("model missing: no .onnx with a manifest in models/street/"), {"model": None}
    try:
        return _measure_street(model, data, limit, tta, cost_frames)
    except GridwatchError as exc:  # a model that does not load, data that is not there: a result, not a crash
        print(f"street model: cannot be measured: {exc}")
        return _not_met(f"cannot be measured: {exc}"), {"model": str(model), "error": str(exc)}


def _measure_street(model: Path, data: Path, limit: int | None, tta: str,
                    cost_frames: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    load_for_eval(model)  # first: a model that does not load is the news, not the data
    dataset = load_dataset(data)
    images = dataset.images("val")[:limit] if limit else dataset.images("val")
    evals = {v: evaluate_detector(load_for_eval(model, tta=v), images, dataset.names) for v in TTA_VARIANTS}
    new = evals[tta]
    baseline = _street_baseline(model, images, dataset.names, tta)
    rows = compare(new, baseline, MARGIN)
    print(table(rows, new, baseline, MARGIN))
    if baseline is None:
        print("baseline: none (the first street model; YOLOX-Nano, the detector it runs beside, has no garbage, "
              "garbage_bin or overflow class)")
    cost = street_cost(model, images, cost_frames) if cost_frames else None
    variants = [_variant_row(v, evals[v], v == tta, cost) for v in TTA_VARIANTS]
    print(variant_table(variants, len(images), cost))
    goals = []
    for c in STREET_GOAL_CLASSES:
        v = new.ap50(c)
        goals.append({"name": f"street_ap50[{c}]", "value": _round(v), "target": STREET_TARGET, "unit": "AP50",
                      "met": v is not None and v >= STREET_TARGET, "tta": tta,
                      **{f"value_{o}_tta": _round(evals[o].ap50(c)) for o in TTA_VARIANTS if o != tta},
                      "baseline": _round(baseline.ap50(c)) if baseline else None,
                      "note": f"{tta_label(tta)}, as {DEPLOYED_CONFIG.relative_to(REPO)} runs the street model; "
                      + ("against the previous committed version" if baseline else "first model")})
    details = {"model": str(model), "sha256": new.sha256, "images": len(images), "goal_tta": tta,
               "goal_tta_from": str(DEPLOYED_CONFIG.relative_to(REPO)),
               "mAP50": _round(new.result.map50), "mAP50_95": _round(new.result.map50_95),
               "baseline_sha256": baseline.sha256 if baseline else None,
               "baseline_mAP50": _round(baseline.result.map50) if baseline else None,
               "per_class": [{"name": r.name, "ap50": _round(r.ap50), "ap50_95": _round(r.ap50_95),
                              "baseline_ap50": _round(r.base_ap50), "verdict": r.verdict} for r in rows],
               "variants": variants, "cost": cost}
    return goals, details


def _variant_row(tta: str, found: ModelEval, deployed: bool, cost: dict[str, Any] | None) -> dict[str, Any]:
    ms = None if cost is None else cost["ms_per_frame"][COST_KEY[tta]]
    return {"tta": tta, "deployed": deployed, "mAP50": _round(found.result.map50),
            "mAP50_95": _round(found.result.map50_95),
            "ap50": {c.name: _round(found.ap50(c.name)) for c in found.result.classes},
            "ap50_95": {c.name: _round(found.ap50_95(c.name)) for c in found.result.classes}, "ms_per_frame": ms}


def _f3(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def variant_table(variants: list[dict[str, Any]], images: int, cost: dict[str, Any] | None) -> str:
    """One row per TTA variant: AP50 per class, mAP50, ms per 640x360 frame."""
    names = list(variants[0]["ap50"])
    lines = [f"street model with and without test-time augmentation, {images} val photos (AP50):",
             f"{'variant':22}" + "".join(f" {n:>11}" for n in names) + f" {'mAP50':>6} {'ms/frame':>9}"]
    for v in variants:
        label = tta_label(v["tta"]) + (" (shipped)" if v["deployed"] else "")
        ms = "-" if v["ms_per_frame"] is None else f"{v['ms_per_frame']:.1f}"
        lines.append(f"{label:22}" + "".join(f" {_f3(v['ap50'][n]):>11}" for n in names)
                     + f" {_f3(v['mAP50']):>6} {ms:>9}")
    if cost is not None:
        ms = cost["ms_per_frame"]
        lines.append(f"cost: {cost['frames']} frames {COST_WH[0]}x{COST_WH[1]}, 1 thread, median ms per frame: no TTA "
                     f"{ms['none']:.1f}, flip batch of 2 {ms['flip_batch2']:.1f} ({cost['ratio_flip_batch2']:.2f}x), "
                     f"flip 2 runs {ms['flip_2runs']:.1f} ({cost['ratio_flip_2runs']:.2f}x), multiscale batch of "
                     f"3 {ms['multiscale_batch3']:.1f} ({cost['ratio_multiscale_batch3']:.2f}x); load average "
                     f"{cost['loadavg_before'][0]:.2f} before, {cost['loadavg_after'][0]:.2f} after")
    return "\n".join(lines)


class _TwoRuns:
    """An `OnnxDetector` seen without its batch ability: flip TTA then runs it twice (a fixed-batch export)."""

    def __init__(self, inner: OnnxDetector) -> None:
        self.inner = inner
        self.info = inner.info

    def detect(self, image: np.ndarray) -> Any:
        return self.inner.detect(image)


def _frame(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise GridwatchError(f"cannot read image {path}")
    return cv2.resize(image, COST_WH, interpolation=cv2.INTER_AREA)


def street_cost(model: Path, images: list[Path], frames: int, warmup: int = 3) -> dict[str, Any]:
    """Median ms per 640x360 frame at 1 thread: no TTA, flip as one batch of 2, flip as two runs, multiscale as one
    batch of 3; they take turns on every frame (rotating who goes first) so a busy moment of the shared machine
    hits them alike."""
    det = OnnxDetector.from_path(model, conf_threshold=0.25, iou_threshold=0.45, threads=1)  # a gateway's settings
    runners = {"none": det.detect, "flip_batch2": FlipTtaDetector(det, 0.45).detect,
               "flip_2runs": FlipTtaDetector(_TwoRuns(det), 0.45).detect,
               "multiscale_batch3": TtaDetector(det, "multiscale", 0.45).detect}
    picked = [images[round(i * (len(images) - 1) / max(frames - 1, 1))] for i in range(frames)]
    frames_wh = [_frame(path) for path in picked]
    for run in runners.values():  # first runs allocate; not timed
        for _ in range(warmup):
            run(frames_wh[0])
    times: dict[str, list[float]] = {k: [] for k in runners}
    before = os.getloadavg()
    for i, frame in enumerate(frames_wh):
        k = i % len(runners)
        for name in list(runners)[k:] + list(runners)[:k]:
            start = time.perf_counter()
            runners[name](frame)
            times[name].append((time.perf_counter() - start) * 1000)
    after = os.getloadavg()
    ms = {k: round(float(np.median(v)), 2) for k, v in times.items()}
    return {"frames": len(times["none"]), "frame_wh": list(COST_WH), "threads": 1, "ms_per_frame": ms,
            "ratio_flip_batch2": round(ms["flip_batch2"] / ms["none"], 3),
            "ratio_flip_2runs": round(ms["flip_2runs"] / ms["none"], 3),
            "ratio_multiscale_batch3": round(ms["multiscale_batch3"] / ms["none"], 3),
            "loadavg_before": [round(x, 2) for x in before], "loadavg_after": [round(x, 2) for x in after]}


def street_false_alarms(model: Path, clips: list[Path], every: int = 10,
                        conf: float = 0.3) -> dict[str, dict[str, Any]]:
    """Per clip and TTA variant: frames sampled, frames with any box, boxes per class (clips without any of the
    model's classes, so every box is a false alarm)."""
    det = OnnxDetector.from_path(model, conf_threshold=conf, iou_threshold=0.45, threads=1)
    out: dict[str, dict[str, Any]] = {}
    for clip in clips:
        frames = _sampled_frames(clip, every)
        row: dict[str, Any] = {"frames": len(frames)}
        for mode in TTA_VARIANTS:
            run = det if mode == "none" else TtaDetector(det, mode, 0.45)
            found = [run.detect(f) for f in frames]
            names = [n for d in found for n in d.data.get("class_name", [])]
            row[mode] = {"frames_with_box": sum(len(d) > 0 for d in found),
                         "boxes": {n: names.count(n) for n in sorted(set(names))}}
        out[clip.name] = row
    return out


def _sampled_frames(clip: Path, every: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    frames, i = [], 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % every == 0:
                frames.append(frame)
            i += 1
    finally:
        cap.release()
    return frames


def false_alarm_table(rows: dict[str, dict[str, Any]]) -> str:
    lines = ["street model on real street clips without garbage, bins or overflow (frames with any box, conf 0.3):",
             f"{'clip':44}" + "".join(f" {tta_label(m):>15}" for m in TTA_VARIANTS)]
    for clip, row in rows.items():
        lines.append(f"{clip[:44]:44}" + "".join(
            f" {str(row[m]['frames_with_box']) + '/' + str(row['frames']):>15}" for m in TTA_VARIANTS))
    return "\n".join(lines)


def _street_baseline(model: Path, images: list[Path], names: list[str], tta: str = "none") -> ModelEval | None:
    """The street model this one replaced (previous committed version), evaluated on the same photos and with the
    same test-time augmentation."""
    with tempfile.TemporaryDirectory(prefix="gridwatch-street-prev-") as tmp:
        prev = previous_version(model, Path(tmp))
        if prev is None:
            return None
        base = evaluate_detector(load_for_eval(prev, tta=tta), images, names)
    return ModelEval(base.model + " (previous commit)", base.sha256, base.result, base.missing, base.tta)


def previous_version(model: Path, into: Path) -> Path | None:
    """The last committed version of `model` (and its manifest) that differs from HEAD's, from git; None if none."""
    if not model.resolve().is_relative_to(REPO):
        return None  # not a file of this repository: no history
    rel = model.resolve().relative_to(REPO).as_posix()
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
    parser.add_argument("--cost-frames", type=int, default=40,
                        help="640x360 frames timed with and without TTA (0: skip the cost)")
    parser.add_argument("--clip-every", type=int, default=10,
                        help="street false alarms on every Nth frame of the shared real clips (0: skip)")
    args = parser.parse_args(argv)

    tta = deployed_street_tta()
    print(f"street goals on the shipped variant: tta {tta} ({DEPLOYED_CONFIG.relative_to(REPO)})")
    street, street_info = street_goals(street_model(args.street_dir), shared_real() / "garbage_cn_street",
                                       args.limit, tta=tta, cost_frames=args.cost_frames)
    clips = sorted((shared_real() / "videos").glob("*.*"))
    model = street_model(args.street_dir)
    if args.clip_every and clips and model is not None and "error" not in street_info:
        street_info["false_alarms"] = street_false_alarms(model, clips, args.clip_every)
        print(false_alarm_table(street_info["false_alarms"]))
    with tempfile.TemporaryDirectory(prefix="gridwatch-models-bench-") as tmp:
        demo, demo_info = demo_goals(args.images, args.seed, Path(tmp))
    goals = street + demo
    for g in goals:
        print(f"goal {g['name']}: {g['value']} (target >= {g['target']}) {'met' if g['met'] else 'NOT met'}"
              + (f" [tta {g['tta']}]" if g.get("tta") else "")
              + (f" [{g['note']}]" if g.get("note") else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"goals": goals, "street": street_info, "demo": demo_info}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
