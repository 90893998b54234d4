"""Train, export and document the demo detector (YOLO11n from scratch on synthetic street scenes).

Training-only code: Ultralytics and torch are imported lazily inside the functions, so importing
``models`` on an edge box never pulls them in. Run from the training env:

    YOLO_OFFLINE=1 /work/venv-train/bin/python -m gridwatch.models.train --out models/demo \
        --train 1500 --val 200 --epochs 12 --imgsz 320 --seed 7

It builds the dataset with ``synth.build_dataset``, trains, exports a static-shape ONNX, evaluates
mAP on the generated validation split, and writes the ONNX, its JSON manifest and a model card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

MODEL_NAME = "gridwatch-demo-yolo11n"
MODEL_VERSION = "0.1.0"
LICENCE = "AGPL-3.0-or-later (weights trained by the gridwatch developers with Ultralytics YOLO11, AGPL-3.0)"
ONNX_OPSET = 12


@dataclass(frozen=True)
class Metrics:
    mAP50: float
    mAP50_95: float
    val_images: int
    per_class_mAP50: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingInfo:
    command: str
    data_seed: int
    epochs: int
    imgsz: int
    train_images: int
    val_images: int
    seconds: float


@dataclass(frozen=True)
class Manifest:
    """The JSON the ONNX backend reads to pre- and post-process exactly as during training."""

    name: str
    version: str
    decoder: str
    input_size: list[int]
    classes: list[str]
    color: str
    scale: str
    letterbox: str
    pad_value: int
    sha256: str
    licence: str
    metrics: Metrics
    training: TrainingInfo

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _ultralytics_env() -> None:
    """No downloads, no telemetry, no runtime pip installs: the box is offline."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "True")


def fit(
    data_yaml: Path,
    work_dir: Path,
    epochs: int,
    imgsz: int,
    seed: int,
    batch: int,
    workers: int,
    init_weights: Path | None = None,
) -> Path:
    """Train YOLO11n from scratch, or continue from our own earlier weights; returns the last weights.

    ``init_weights`` exists because CPU time comes in slices: a second stage can continue a first one
    (e.g. at a larger imgsz) instead of starting over. No third-party pretrained weights are used.
    """
    _ultralytics_env()
    from ultralytics import YOLO

    model = YOLO(str(init_weights)) if init_weights is not None else YOLO("yolo11n.yaml")
    model.train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        seed=seed,
        batch=batch,
        workers=workers,
        device="cpu",
        project=str(work_dir / "runs"),
        name="train",
        exist_ok=True,
        # Ultralytics only loads the starting weights when pretrained is True; False = fresh init.
        pretrained=init_weights is not None,
        amp=False,
        plots=False,
        val=False,
        deterministic=False,
        cache="ram",
        # Synthetic objects are small and the scenes are busy: milder scale jitter keeps bags visible.
        scale=0.3,
        translate=0.1,
        mosaic=1.0,
        close_mosaic=max(1, epochs // 5),
        fliplr=0.5,
        hsv_h=0.02,
        hsv_s=0.5,
        hsv_v=0.4,
        # A continued stage must not be shaken up by the from-scratch warm-up (bias lr 0.1).
        warmup_epochs=1.0 if init_weights is None else 0.3,
        warmup_bias_lr=0.1 if init_weights is None else 0.01,
        patience=0,
    )
    trainer = model.trainer
    assert trainer is not None
    return Path(trainer.last)


def evaluate(weights: Path, data_yaml: Path, imgsz: int, classes: list[str]) -> Metrics:
    """mAP on the generated validation split (Ultralytics' COCO-style AP)."""
    _ultralytics_env()
    from ultralytics import YOLO

    res = YOLO(str(weights)).val(data=str(data_yaml), imgsz=imgsz, batch=16, device="cpu", plots=False, workers=0)
    per_class = {classes[int(c)]: float(ap) for c, ap in zip(res.box.ap_class_index, res.box.ap50, strict=False)}
    n_val = len(list((data_yaml.parent / "images" / "val").glob("*.jpg")))
    return Metrics(float(res.box.map50), float(res.box.map), n_val, per_class)


def export_onnx(weights: Path, imgsz: int) -> Path:
    """Static-shape ONNX (1x3xSxS), opset 12: the widest-supported target for ORT and TensorRT."""
    _ultralytics_env()
    from ultralytics import YOLO

    out = YOLO(str(weights)).export(format="onnx", imgsz=imgsz, opset=ONNX_OPSET, dynamic=False, simplify=True)
    return Path(str(out))


def _stages_text(command: str) -> str:
    """The exact command(s); a chained command is a staged run (each stage continues the previous)."""
    stages = [c.strip() for c in command.split(" && ") if c.strip()]
    if len(stages) <= 1:
        return f"- command: `{command}`"
    lines = [
        f"- trained in {len(stages)} stages; each later stage starts from the previous stage's `last.pt`",
        "  (`--init-weights`, our own weights, never third-party ones). Run in order:",
    ]
    lines += [f"  {i}. `{c}`" for i, c in enumerate(stages, 1)]
    lines.append("- training is not bit-deterministic on CPU (deterministic=False), so a re-run gives a comparable,")
    lines.append("  not identical, model; the dataset for a given seed and generator version is identical.")
    return "\n".join(lines)


def write_card(path: Path, m: Manifest) -> None:
    per_class = "\n".join(f"| {k} | {v:.3f} |" for k, v in m.metrics.per_class_mAP50.items())
    text = f"""# {m.name} {m.version}

A YOLO11n detector trained **from scratch** on synthetic street scenes rendered by `synth`
(the randomised scenario family). It exists so the demo and the tests run end to end without
third-party weights; it is not a production model for real cameras.

| | |
|---|---|
| classes (id order) | {", ".join(m.classes)} |
| input | {m.input_size[0]}x{m.input_size[1]}, RGB, 0-1 scale, centre letterbox, pad {m.pad_value} |
| output | Ultralytics head `(1, 4 + {len(m.classes)}, N)`: cx, cy, w, h (input pixels), class scores |
| file | `{m.name}.onnx` (opset {ONNX_OPSET}, static shape) |
| sha256 | `{m.sha256}` |

## Training

{_stages_text(m.training.command)}
- data (last stage): `synth.build_dataset(seed={m.training.data_seed})`: {m.training.train_images} train /
  {m.training.val_images} val images, 640x360 and 640x480, from disjoint random scenes
- last stage: {m.training.epochs} epochs at imgsz {m.training.imgsz}, CPU, {m.training.seconds / 60:.1f} min wall-clock

## Metrics (generated validation split, {m.metrics.val_images} images)

- mAP50: **{m.metrics.mAP50:.3f}**
- mAP50-95: **{m.metrics.mAP50_95:.3f}**

| class | AP50 |
|---|---|
{per_class}

These numbers are on synthetic data drawn from the same family as training; expect far lower
numbers on real footage.

## Licence

{m.licence}. The weights were produced by us with Ultralytics (AGPL-3.0), so they are distributed
under AGPL-3.0 like the rest of gridwatch.
"""
    path.write_text(text, encoding="utf-8")


def train(
    data_yaml: str | Path,
    out_dir: str | Path,
    epochs: int,
    imgsz: int,
    seed: int,
    *,
    batch: int = 16,
    workers: int = 1,
    work_dir: str | Path = "/tmp/gridwatch-train",
    data_seed: int | None = None,
    command: str = "",
    init_weights: str | Path | None = None,
) -> Manifest:
    """Train, evaluate and export; write ONNX + manifest + model card into ``out_dir``."""
    from gridwatch.synth import CLASSES

    data_yaml, out, work = Path(data_yaml), Path(out_dir), Path(work_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    init = Path(init_weights) if init_weights is not None else None
    weights = fit(data_yaml, work, epochs, imgsz, seed, batch, workers, init)
    seconds = time.monotonic() - started
    onnx_src = export_onnx(weights, imgsz)
    metrics = evaluate(weights, data_yaml, imgsz, list(CLASSES))
    onnx_dst = out / f"{MODEL_NAME}.onnx"
    shutil.copyfile(onnx_src, onnx_dst)
    n_train = len(list((data_yaml.parent / "images" / "train").glob("*.jpg")))
    manifest = Manifest(
        name=MODEL_NAME,
        version=MODEL_VERSION,
        decoder="ultralytics",
        input_size=[imgsz, imgsz],
        classes=list(CLASSES),
        color="RGB",
        scale="0-1",
        letterbox="center",
        pad_value=114,
        sha256=sha256_file(onnx_dst),
        licence=LICENCE,
        metrics=metrics,
        training=TrainingInfo(
            command, seed if data_seed is None else data_seed, epochs, imgsz, n_train, metrics.val_images, seconds
        ),
    )
    (out / f"{MODEL_NAME}.json").write_text(manifest.to_json(), encoding="utf-8")
    write_card(out / "MODEL_CARD.md", manifest)
    return manifest


# ------------------------------------------------------------------------------ sanity check (ORT)
def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def demo_recall(
    onnx_path: str | Path, scenario: str | Path, step_s: float = 1.0, conf: float = 0.25, iou: float = 0.5
) -> dict[str, tuple[int, int]]:
    """Per-class (hits, ground-truth boxes) on demo frames every ``step_s``: IoU >= ``iou``, same class.

    Ground truth is every box the generator labels (including partly hidden or cut-off ones), so this
    is a strict number.
    """
    from gridwatch.models.onnx_backend import OnnxDetector  # the edge's own inference path, manifest next to the ONNX
    from gridwatch.synth import CLASSES
    from gridwatch.synth.scenario import load_scenario
    from gridwatch.synth.scene import Scene

    detector = OnnxDetector.from_path(onnx_path, conf_threshold=conf, iou_threshold=0.5)
    scene = Scene.compile(load_scenario(scenario))
    stats = {c: [0, 0] for c in CLASSES}
    for t in np.arange(0.5, scene.scenario.duration_s, step_s):
        fr = scene.frame_at(float(t), int(t * scene.scenario.fps))
        d = detector.detect(fr.image)
        cls = d.class_id if d.class_id is not None else np.zeros(len(d), dtype=int)
        for lb in fr.labels:
            gt = np.array([lb.x1, lb.y1, lb.x2, lb.y2])
            name = CLASSES[lb.class_id]
            stats[name][1] += 1
            if any(int(cls[i]) == lb.class_id and _iou(gt, d.xyxy[i]) >= iou for i in range(len(d))):
                stats[name][0] += 1
    return {k: (v[0], v[1]) for k, v in stats.items()}


def append_demo_recall(card: Path, scenario: Path, recall: dict[str, tuple[int, int]]) -> None:
    """Add the demo-clip check to the model card: the number the demo actually depends on."""
    rows = "\n".join(f"| {k} | {h}/{t} | {h / t if t else 0.0:.2f} |" for k, (h, t) in recall.items())
    text = (
        f"\n## Demo clip check ({scenario}, one frame per second)\n\n"
        "ONNX Runtime, conf 0.25, a hit = same class and IoU >= 0.5 with a generator label. Labels include\n"
        "partly hidden and partly out-of-frame objects, so this is strict.\n\n"
        f"| class | hits/labels | recall |\n|---|---|---|\n{rows}\n"
    )
    with card.open("a", encoding="utf-8") as f:
        f.write(text)


# -------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="gridwatch models train",
        description=__doc__.split("\n")[0] + " With --data: train on that Ultralytics data set instead "
        "(models/train_data.py).")
    p.add_argument("--data", type=Path, default=None,
                   help="an Ultralytics data YAML (any data set); without it, synthetic data is generated")
    p.add_argument("--out", type=Path, default=None,
                   help="with --data: the run folder (weights/last.pt, training.json, progress.json); "
                        "synthetic: where ONNX + manifest + card go (default models/demo)")
    p.add_argument("--resume", action="store_true", help="with --data: continue the stopped run in --out")
    p.add_argument("--model", default="yolo11n.yaml", help="with --data: architecture to train from scratch")
    p.add_argument("--no-cache", action="store_true", help="with --data: do not cache images in RAM")
    p.add_argument("--train", type=int, default=1500, help="synthetic: training images to generate")
    p.add_argument("--val", type=int, default=200, help="synthetic: validation images to generate")
    p.add_argument("--epochs", type=int, default=None, help="default 12 (synthetic) or 50 (--data)")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--seed", type=int, default=7, help="data seed and training seed")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/gridwatch-train"),
                   help="synthetic: dataset + runs (not committed)")
    p.add_argument("--reuse-data", action="store_true", help="skip generation if the dataset already exists")
    p.add_argument("--init-weights", type=Path, default=None,
                   help="start from these weights (fine-tune, or the next stage of a run: its weights/last.pt)")
    p.add_argument("--init-command", default="", help="the command that produced --init-weights (for the card)")
    p.add_argument("--demo", type=Path, default=Path("synth/scenarios/demo.yaml"), help="clip for the recall check")
    p.add_argument("--optimizer", default="auto", choices=["auto", "SGD", "AdamW", "Adam"],
                   help="with --data: Ultralytics optimiser (auto picks AdamW with a small lr for short runs)")
    p.add_argument("--lr0", type=float, default=None,
                   help="with --data: initial learning rate (needs --optimizer other than auto); lower it to "
                        "fine-tune a good model without first undoing it")
    p.add_argument("--cos-lr", action="store_true", help="with --data: cosine learning-rate schedule")
    p.add_argument("--close-mosaic", type=int, default=None,
                   help="with --data: epochs at the end without mosaic (default epochs/5, at most 10)")
    p.add_argument("--oversample", action="append", default=[], metavar="CLASS=K",
                   help="with --data: list each train image holding a CLASS box K times per epoch (repeatable; "
                        "val unchanged), for a rare or hard class")
    p.add_argument("--hyp", action="append", default=[], metavar="KEY=VALUE",
                   help="with --data: an Ultralytics training hyperparameter (repeatable), e.g. mixup=0.1, "
                        "copy_paste=0.1, scale=0.7, cls=1.0; checked against its range (models/hyp.py)")
    args = p.parse_args(argv)
    raw = argv if argv is not None else sys.argv[1:]
    if args.data is not None or args.resume:
        return _main_data(args, raw)
    args.out = args.out or Path("models/demo")
    args.epochs = args.epochs or 12
    if (args.out / "training.json").is_file():
        from gridwatch.models.train_data import TrainError

        raise TrainError(f"{args.out} is a --data training run; continue it with --resume, or pass --data DATA.yaml "
                         "(without --data this command generates synthetic data and trains the demo model)")

    from gridwatch.synth import build_dataset

    skip = {i + 1 for i, a in enumerate(raw) if a == "--init-command"} | {
        i for i, a in enumerate(raw) if a in ("--reuse-data", "--init-command")
    }
    command = "YOLO_OFFLINE=1 python -m gridwatch.models.train " + " ".join(
        shlex.quote(a) for i, a in enumerate(raw) if i not in skip
    )
    if args.init_command:
        command = f"{args.init_command} && {command}"
    data_dir = args.work_dir / "dataset"
    data_yaml = data_dir / "data.yaml"
    if not (args.reuse_data and data_yaml.exists()):
        summary = build_dataset(data_dir, args.train, args.val, seed=args.seed, progress=True)
        print(f"[train] dataset: {summary.instances} in {summary.seconds:.0f}s", flush=True)
    m = train(
        data_yaml,
        args.out,
        args.epochs,
        args.imgsz,
        args.seed,
        batch=args.batch,
        workers=args.workers,
        work_dir=args.work_dir,
        data_seed=args.seed,
        command=command,
        init_weights=args.init_weights,
    )
    print(f"[train] mAP50={m.metrics.mAP50:.3f} mAP50-95={m.metrics.mAP50_95:.3f} sha256={m.sha256}", flush=True)
    if args.demo.exists():
        recall = demo_recall(args.out / f"{MODEL_NAME}.onnx", args.demo)
        for name, (hit, total) in recall.items():
            print(f"[train] demo recall {name}: {hit}/{total}", flush=True)
        append_demo_recall(args.out / "MODEL_CARD.md", args.demo, recall)
    return 0


def _main_data(args: argparse.Namespace, raw: list[str]) -> int:
    from gridwatch.models.train_data import TrainError, TrainRequest, read_training_json, train_on_data

    if args.out is None:
        raise TrainError("--out is required with --data or --resume: the run folder (e.g. runs/street-s1)")
    if args.data is None:
        started = read_training_json(args.out)
        if started is None:
            raise TrainError(f"--resume without --data: {args.out} has no training.json; pass --data DATA.yaml")
        args.data = Path(started["data"])
    req = TrainRequest(
        data=args.data, out=args.out, epochs=args.epochs or 50, imgsz=args.imgsz, batch=args.batch,
        workers=args.workers, seed=args.seed, init_weights=args.init_weights, resume=args.resume,
        model=args.model, cache=not args.no_cache, optimizer=args.optimizer, lr0=args.lr0, cos_lr=args.cos_lr,
        close_mosaic=args.close_mosaic, oversample=tuple(args.oversample), hyp=tuple(args.hyp),
        command="gridwatch models train " + " ".join(shlex.quote(a) for a in raw),
    )
    last = train_on_data(req)
    print(f"[train] done: {last}\n[train] next: gridwatch models export {last} --imgsz 384x224 --data {args.data} "
          f"--out DIR", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
