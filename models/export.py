"""`gridwatch models export WEIGHTS --imgsz 384x224 --out DIR --name NAME`: an edge-ready ONNX and its manifest.

1. Ultralytics exports the .pt with a dynamic batch; the input is then fixed to WIDTH x HEIGHT (a rectangular
   input fits 16:9 cameras: 384x224 measured 1.67x faster than 384x384 on 16:9 video here), so every gateway runs
   exactly the evaluated shape while a batch of cameras can share one run (`OnnxDetector.detect_batch`).
2. The manifest pins the file by sha256 and records the classes, the training run (training.json: commands,
   stages) and the training data's fingerprint (`yolo_data.fingerprint`).
3. Unless ``--no-eval``, the export is evaluated through `OnnxDetector` on the data's val split and the metrics
   go into the manifest (the ONNX is unchanged, so its sha256 stays valid).
4. ``--int8`` also writes ``NAME-int8.onnx`` (static QDQ, calibrated on training images), evaluated the same way.

Ultralytics is imported only for step 1 (the [train] extra); the rest runs on the edge runtime.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridwatch.models.base import ModelConfigError
from gridwatch.models.evaluate import evaluate_detector, load_for_eval, metrics_dict
from gridwatch.models.manifest import ModelManifest, load_manifest
from gridwatch.models.onnx_backend import file_sha256
from gridwatch.models.quantize import quantize_int8
from gridwatch.models.train_data import read_training_json
from gridwatch.models.yolo_data import YoloDataset, fingerprint, load_dataset

ONNX_OPSET = 13  # per-channel QDQ (INT8) needs >= 13; ONNX Runtime and TensorRT 8+ read it
STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class ExportRequest:
    weights: Path
    input_wh: tuple[int, int]
    out: Path
    name: str
    version: str = "0.1.0"
    data: Path | None = None
    int8: bool = False
    calib_images: int = 128
    evaluate: bool = True
    split: str = "val"
    licence: str = "AGPL-3.0-or-later (weights trained with Ultralytics YOLO11, AGPL-3.0)"


TRAIN_ARGS_KEPT = ("model", "data", "epochs", "imgsz", "batch", "seed", "pretrained")


def ultralytics_export(weights: Path, input_wh: tuple[int, int]) -> tuple[Path, list[str], dict[str, Any]]:
    """Export with a dynamic batch at (h, w); return the ONNX, the class names and the checkpoint's training
    settings (`TRAIN_ARGS_KEPT`, plus the epochs it had completed)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    model = YOLO(str(weights))
    names = model.names
    classes = [str(names[i]) for i in range(len(names))]
    ckpt = model.ckpt if isinstance(model.ckpt, dict) else {}
    args = ckpt.get("train_args") or {}
    kept: dict[str, Any] = {k: args[k] for k in TRAIN_ARGS_KEPT if k in args and isinstance(args[k], str | int | float)}
    if isinstance(ckpt.get("epoch"), int) and ckpt["epoch"] >= 0:
        kept["epochs_done"] = ckpt["epoch"] + 1  # a stopped run's last.pt; -1 once the run finished
    w, h = input_wh
    out = model.export(format="onnx", imgsz=[h, w], dynamic=True, opset=ONNX_OPSET, simplify=True, batch=1)
    return Path(str(out)), classes, kept


def fix_input_size(src: Path, dst: Path, input_wh: tuple[int, int]) -> Path:
    """Make the input ``[batch, 3, h, w]`` and the output ``[batch, 4+nc, anchors]``: only the batch stays free.

    Ultralytics' dynamic export frees height and width too; a fixed size lets ONNX Runtime plan memory once and
    lets `OnnxDetector` check the manifest's input_size against the graph.
    """
    import onnx

    model = onnx.load(str(src))
    w, h = input_wh
    anchors = sum((w // s) * (h // s) for s in STRIDES)
    (inp,), (out, *_) = model.graph.input, model.graph.output
    dims = inp.type.tensor_type.shape.dim
    dims[0].dim_param = "batch"
    for d, v in ((dims[1], 3), (dims[2], h), (dims[3], w)):
        d.dim_value = v
    odims = out.type.tensor_type.shape.dim
    odims[0].dim_param = "batch"
    odims[2].dim_value = anchors
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


def _data_set(req: ExportRequest, run_data: Any, training: dict[str, Any] | None) -> YoloDataset | None:
    source = req.data or (Path(training["data"]) if training and training.get("data") else None) or (
        Path(run_data) if run_data else None)
    if source is None or not Path(source).exists():
        return None
    return load_dataset(source)


def _manifest(req: ExportRequest, onnx_path: Path, classes: list[str], training: dict[str, Any] | None,
              dataset: YoloDataset | None, name: str, version: str) -> ModelManifest:
    info: dict[str, Any] = dict(training or {})
    if dataset is not None:
        now = fingerprint(dataset)
        info.setdefault("data", str(dataset.yaml_path))
        if info.get("data_fingerprint") not in (None, now):
            info["data_fingerprint_at_export"] = now  # the data changed since training: keep both
        info.setdefault("data_fingerprint", now)
    info["weights"] = str(req.weights)
    info["weights_sha256"] = file_sha256(req.weights)
    info["export"] = {"input_wh": list(req.input_wh), "dynamic_batch": True, "opset": ONNX_OPSET,
                      "int8": onnx_path.stem.endswith("-int8")}
    return ModelManifest(
        name=name, version=version, decoder="ultralytics", input_size=req.input_wh, classes=classes, color="RGB",
        scale="0-1", letterbox="center", pad_value=114, sha256=file_sha256(onnx_path), licence=req.licence,
        metrics=None, training=info,
    )


def _write(manifest: ModelManifest, path: Path) -> None:
    path.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")


def _evaluate_into(onnx_path: Path, dataset: YoloDataset, split: str) -> str:
    """Evaluate the export on `split` and put the metrics into its manifest; return a summary line."""
    manifest_path = onnx_path.with_suffix(".json")
    result = evaluate_detector(load_for_eval(onnx_path), dataset.images(split), dataset.names)
    metrics = metrics_dict(result, split, dataset.yaml_path)
    _write(load_manifest(manifest_path).model_copy(update={"metrics": metrics}), manifest_path)
    per_class = ", ".join(f"{k} {v:.3f}" for k, v in metrics["per_class_mAP50"].items() if v is not None)
    return f"{onnx_path.name}: mAP50 {metrics['mAP50']} mAP50-95 {metrics['mAP50_95']} on {split} ({per_class})"


def export_model(req: ExportRequest) -> list[str]:
    """Export, write manifests, evaluate, quantise as `req` says; return the lines to print."""
    if not req.weights.is_file():
        raise ModelConfigError(f"weights not found: {req.weights}")
    req.out.mkdir(parents=True, exist_ok=True)
    raw, classes, train_args = ultralytics_export(req.weights, req.input_wh)
    onnx_path = fix_input_size(raw, req.out / f"{req.name}.onnx", req.input_wh)
    training = read_training_json(req.weights.parent.parent) or {"ultralytics_train_args": train_args}
    dataset = _data_set(req, train_args.get("data"), training)
    lines = [f"wrote {onnx_path} ({req.input_wh[0]}x{req.input_wh[1]}, dynamic batch) and its manifest"]
    _write(_manifest(req, onnx_path, classes, training, dataset, req.name, req.version), onnx_path.with_suffix(".json"))
    if dataset is None:
        lines.append("no data set found (pass --data): manifest without data fingerprint and metrics")
    outputs = [onnx_path]
    if req.int8:
        if dataset is None:
            raise ModelConfigError("--int8 needs calibration images: pass --data DATA.yaml")
        calib = dataset.splits.get("train") or dataset.images(req.split)
        step = max(1, len(calib) // req.calib_images)
        q_path = quantize_int8(onnx_path, req.out / f"{req.name}-int8.onnx", load_manifest(
            onnx_path.with_suffix(".json")), calib[::step][: req.calib_images])
        _write(_manifest(req, q_path, classes, training, dataset, f"{req.name}-int8", req.version),
               q_path.with_suffix(".json"))
        lines.append(f"wrote {q_path} (INT8, calibrated on {len(calib[::step][: req.calib_images])} images)")
        outputs.append(q_path)
    if req.evaluate and dataset is not None:
        lines += [_evaluate_into(p, dataset, req.split) for p in outputs]
    if raw.resolve() != onnx_path.resolve():
        raw.unlink(missing_ok=True)  # Ultralytics writes its export next to the weights; ours is in --out
    return lines
