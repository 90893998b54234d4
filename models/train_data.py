"""Train a YOLO11 detector on any Ultralytics-layout data set, in stages that survive being stopped.

Training-only code: Ultralytics (and torch) are imported inside the functions, never at import time.

    gridwatch models train --data DATA.yaml --out runs/street-s1 --epochs 60 --imgsz 320     # from scratch
    gridwatch models train --data DATA.yaml --out runs/street-s1 --resume                     # after a stop
    gridwatch models train --data DATA.yaml --out runs/street-s2 --epochs 20 --imgsz 384 \\
        --init-weights runs/street-s1/weights/last.pt                                         # next stage

``--out`` is the run folder: Ultralytics writes ``weights/last.pt`` there after every epoch, so a stopped run
(Ctrl-C, SIGTERM, a reboot) loses at most the epoch in progress and ``--resume`` continues it with its
optimiser state and schedule. A finished run cannot be resumed; a further stage starts from its weights with
``--init-weights`` (fine-tuning: any YOLO .pt, ours or a given model). Next to the weights the run keeps
``training.json`` (data set, its fingerprint, every command of the run and of the stages before it) and
``progress.json`` (epoch, losses, elapsed, ETA), which ``gridwatch models export`` copies into the manifest.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridwatch.errors import GridwatchError
from gridwatch.models.hyp import parse_hyp
from gridwatch.models.yolo_data import fingerprint, load_dataset

TRAINING_JSON = "training.json"
PROGRESS_JSON = "progress.json"


class TrainError(GridwatchError):
    """A training request that cannot be carried out as asked (the message says what to do instead)."""


@dataclass(frozen=True)
class TrainRequest:
    data: Path
    out: Path
    epochs: int = 50
    imgsz: int = 320
    batch: int = 16
    workers: int = 1
    seed: int = 0
    init_weights: Path | None = None
    resume: bool = False
    model: str = "yolo11n.yaml"
    cache: bool = True
    command: str = ""
    optimizer: str = "auto"
    lr0: float | None = None
    cos_lr: bool = False
    close_mosaic: int | None = None
    oversample: tuple[str, ...] = ()  # CLASS=K specs (models/oversample.py)
    hyp: tuple[str, ...] = ()  # KEY=VALUE Ultralytics hyperparameters (models/hyp.py)


def last_weights(out: Path) -> Path:
    return out / "weights" / "last.pt"


def read_training_json(run_dir: Path) -> dict[str, Any] | None:
    """The run's training.json, or None when the run was not made by `gridwatch models train`."""
    path = run_dir / TRAINING_JSON
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _check(req: TrainRequest) -> None:
    last = last_weights(req.out)
    if req.oversample and req.resume:
        raise TrainError("--resume keeps the run's own sampling; drop --oversample")
    if req.hyp and req.resume:
        raise TrainError("--resume keeps the run's own hyperparameters; drop --hyp")
    parse_hyp(req.hyp)
    if req.resume:
        if not last.is_file():
            raise TrainError(f"--resume: {last} does not exist; start the run without --resume first")
        if req.init_weights is not None:
            raise TrainError("--resume continues the run in --out as it was started; drop --init-weights")
        return
    if last.exists():
        raise TrainError(
            f"{req.out} already holds a run ({last}); continue it with --resume, or start a new stage from it "
            f"with --init-weights {last} --out ANOTHER_DIR"
        )
    if req.init_weights is not None and not req.init_weights.is_file():
        raise TrainError(f"--init-weights {req.init_weights} does not exist")
    if req.lr0 is not None and req.optimizer == "auto":
        raise TrainError("--lr0 is ignored by --optimizer auto (it picks its own); add --optimizer SGD or AdamW")
    if req.lr0 is not None and not 0.0 < req.lr0 <= 1.0:
        raise TrainError(f"--lr0 {req.lr0}: give a learning rate in (0, 1], e.g. 0.002 to fine-tune")
    if req.close_mosaic is not None and req.close_mosaic < 0:
        raise TrainError(f"--close-mosaic {req.close_mosaic}: give 0 (keep mosaic) or a number of final epochs")


def _provenance(req: TrainRequest) -> dict[str, Any]:
    if req.resume:
        info = read_training_json(req.out) or {"data": str(req.data)}
        info.setdefault("commands", []).append(req.command)
        return info
    dataset = load_dataset(req.data)
    previous = read_training_json(req.init_weights.parent.parent) if req.init_weights is not None else None
    return {
        "data": str(req.data.resolve()),
        "data_fingerprint": fingerprint(dataset),
        "classes": dataset.names,
        "train_images": len(dataset.splits.get("train", [])),
        "val_images": len(dataset.splits.get("val", [])),
        "model": req.model if req.init_weights is None else None,
        "init_weights": str(req.init_weights) if req.init_weights is not None else None,
        "epochs": req.epochs, "imgsz": req.imgsz, "batch": req.batch, "seed": req.seed,
        "optimizer": req.optimizer, "lr0": req.lr0, "cos_lr": req.cos_lr, "hyp": parse_hyp(req.hyp),
        "commands": [req.command],
        "previous_stage": previous,
        "seconds": 0.0,
    }


def _losses(trainer: Any) -> dict[str, float]:
    """The epoch's mean training losses (a dict in Ultralytics 8.4, a tensor in 8.3)."""
    tloss = trainer.tloss
    if tloss is None:
        return {}
    if isinstance(tloss, dict):
        return {str(k).split("/")[-1]: round(float(v), 4) for k, v in tloss.items()}
    values = tloss.tolist() if hasattr(tloss, "tolist") else [tloss]
    return {k: round(float(v), 4) for k, v in zip(trainer.loss_names, values, strict=False)}


def _progress_callback(req: TrainRequest, started: float) -> Any:
    """Per-epoch one-line progress and progress.json: epoch, mean losses, elapsed, ETA for this run."""

    printed: set[int] = set()

    def on_epoch_end(trainer: Any) -> None:
        done, total = int(trainer.epoch) + 1, int(trainer.epochs)
        if done > total or done in printed:  # Ultralytics fires the hook again for its final evaluation
            return
        printed.add(done)
        start_epoch = int(getattr(trainer, "start_epoch", 0))
        elapsed = time.monotonic() - started
        per_epoch = elapsed / max(done - start_epoch, 1)
        eta = per_epoch * (total - done)
        losses = _losses(trainer)
        print(f"[train] epoch {done}/{total}  {' '.join(f'{k} {v:.3f}' for k, v in losses.items())}  "
              f"{per_epoch / 60:.1f} min/epoch  ETA {eta / 60:.0f} min  ({last_weights(req.out)} saved)", flush=True)
        _write_json(req.out / PROGRESS_JSON, {"epoch": done, "epochs": total, "losses": losses,
                                              "seconds_this_session": round(elapsed, 1),
                                              "eta_seconds": round(eta, 1), "last": str(last_weights(req.out))})

    return on_epoch_end


def _check_resumable(last: Path) -> None:
    """Ultralytics strips the optimiser from last.pt when a run finishes, and `train(resume=True)` on such a
    file silently starts a new run with default settings over the old one; refuse instead."""
    import torch

    ckpt = torch.load(str(last), map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("optimizer") is None or int(ckpt.get("epoch", -1)) < 0:
        raise TrainError(
            f"{last} is from a finished run (no optimiser state), so there is nothing to resume; train a further "
            f"stage from it with --init-weights {last} --out ANOTHER_DIR --epochs N"
        )


def _trainable_init(req: TrainRequest) -> Path:
    """`--init-weights` as a .pt: a shipped ONNX export is restored into `--model`'s architecture first
    (models/onnx_weights.py), so the deployed model can be fine-tuned when its training run is long gone."""
    assert req.init_weights is not None
    if req.init_weights.suffix.lower() != ".onnx":
        return req.init_weights
    from gridwatch.models.onnx_weights import OnnxWeightsError, restore_checkpoint

    dataset = load_dataset(req.data)
    train = dataset.images("train")
    step = max(1, len(train) // 64)
    out = req.out / "weights" / "init-from-onnx.pt"
    try:
        restored = restore_checkpoint(req.init_weights, out, arch=req.model, names=dataset.names,
                                      images=train[::step][:64], imgsz=req.imgsz)
    except OnnxWeightsError as exc:
        raise TrainError(f"--init-weights {req.init_weights}: {exc}") from exc
    print(f"restored {restored.tensors} tensors and unfolded {restored.norms} batch norms from {req.init_weights} "
          f"(largest output gap {restored.gap:.1g}) into {out}")
    return out


def _train_yaml(req: TrainRequest, info: dict[str, Any]) -> Path:
    """The data YAML Ultralytics trains on: the request's, or (``--oversample``) a derived one in the run folder,
    recorded in ``info`` so ``--resume`` trains on the same list."""
    if req.resume:
        return Path(info.get("train_data") or req.data)
    if not req.oversample:
        return req.data
    from gridwatch.models.oversample import parse_factors, write_oversampled

    dataset = load_dataset(req.data)
    factors = parse_factors(list(req.oversample), dataset.names)
    made = write_oversampled(dataset, factors, req.out / "oversampled")
    info["oversample"] = {dataset.names[c]: k for c, k in factors.items()}
    info["train_data"] = str(made.yaml_path.resolve())
    info["train_list_entries"] = made.train_images
    print(f"[train] --oversample {' '.join(req.oversample)}: {made.repeated_images} of {len(dataset.images('train'))} "
          f"train images repeated, {made.train_images} per epoch ({made.yaml_path})", flush=True)
    return made.yaml_path


def train_on_data(req: TrainRequest) -> Path:
    """Train (or resume) as `req` says; return the run's last.pt. Raise TrainError for impossible requests."""
    _check(req)
    if req.resume:
        _check_resumable(last_weights(req.out))
    info = _provenance(req)
    train_yaml = _train_yaml(req, info)
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no downloads, no telemetry, no runtime pip installs
    from ultralytics import YOLO

    req.out.mkdir(parents=True, exist_ok=True)
    _write_json(req.out / TRAINING_JSON, info)
    started = time.monotonic()
    if req.resume:
        model = YOLO(str(last_weights(req.out)))
        model.add_callback("on_fit_epoch_end", _progress_callback(req, started))
        # Ultralytics 8.4 would otherwise replace the run's data set by its default (coco8, a download)
        model.train(resume=True, data=str(train_yaml))
    else:
        init = _trainable_init(req) if req.init_weights is not None else None
        model = YOLO(str(init) if init is not None else req.model)
        model.add_callback("on_fit_epoch_end", _progress_callback(req, started))
        kwargs = dict(
            data=str(train_yaml.resolve()), epochs=req.epochs, imgsz=req.imgsz, batch=req.batch, workers=req.workers,
            seed=req.seed, device="cpu", project=str(req.out.resolve().parent), name=req.out.name, exist_ok=True,
            pretrained=req.init_weights is not None, amp=False, plots=False, val=False, patience=0,
            cache="ram" if req.cache else False, deterministic=False,
            close_mosaic=req.close_mosaic if req.close_mosaic is not None else max(1, min(10, req.epochs // 5)),
            optimizer=req.optimizer, cos_lr=req.cos_lr, **({"lr0": req.lr0} if req.lr0 is not None else {}),
            warmup_epochs=1.0 if req.init_weights is None else 0.3,
            warmup_bias_lr=0.1 if req.init_weights is None else 0.01,
        ) | info["hyp"]
        model.train(**kwargs)
    info["seconds"] = round(float(info.get("seconds", 0.0)) + time.monotonic() - started, 1)
    _write_json(req.out / TRAINING_JSON, info)
    return last_weights(req.out)
