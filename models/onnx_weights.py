"""Turn a shipped Ultralytics ONNX export back into a trainable checkpoint (needs the [train] extra).

A gateway keeps only the ONNX file; the `.pt` a training run produced is often gone by the time an engineer wants
to fine-tune the deployed model on new field data. `torch.onnx.export` of an Ultralytics detector keeps the
module names (`model.0.conv.weight`, ...), with each convolution's batch norm folded into its weight and bias.
This module rebuilds the architecture, copies the folded weights in, and unfolds every batch norm from data:
it measures each convolution's output mean and variance on a few training images and sets the norm to undo
exactly that, so in training mode (batch statistics) the network computes what the ONNX file computes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np


class OnnxWeightsError(ValueError):
    """The ONNX file cannot be mapped onto the architecture."""


@dataclass(frozen=True)
class Restored:
    checkpoint: Path
    tensors: int
    norms: int
    images: int
    gap: float


def onnx_initializers(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def _conv_norm_pairs(model: Any) -> Iterator[tuple[str, Any, Any]]:
    """(name, conv, bn) for every Ultralytics `Conv` block (a Conv2d followed by a BatchNorm2d)."""
    import torch.nn as nn

    for name, module in model.named_modules():
        conv, norm = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            yield name, conv, norm


def _load_folded(model: Any, weights: dict[str, np.ndarray]) -> int:
    """Copy every tensor of the ONNX file into `model`; Conv+BN blocks take the folded bias into the norm."""
    import torch

    pairs = {name: (conv, norm) for name, conv, norm in _conv_norm_pairs(model)}
    state = model.state_dict()
    copied = 0
    with torch.no_grad():
        for name, (conv, norm) in pairs.items():
            w, b = _pop(weights, f"{name}.conv.weight"), _pop(weights, f"{name}.conv.bias")
            _copy(conv.weight, w, f"{name}.conv.weight")
            norm.weight.fill_(1.0)
            _copy(norm.bias, b, f"{name}.conv.bias")
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
            copied += 2
        for key in list(weights):
            if key in state and not key.startswith("onnx::"):
                _copy(state[key], weights.pop(key), key)
                copied += 1
    return copied


def _pop(weights: dict[str, np.ndarray], key: str) -> np.ndarray:
    if key not in weights:
        raise OnnxWeightsError(f"the ONNX file has no tensor {key!r} (not an Ultralytics export of this architecture?)")
    return weights.pop(key)


def _copy(target: Any, array: np.ndarray, key: str) -> None:
    import torch

    if tuple(target.shape) != tuple(array.shape):
        raise OnnxWeightsError(f"{key}: the ONNX file has shape {array.shape}, the architecture {tuple(target.shape)}")
    target.copy_(torch.from_numpy(np.ascontiguousarray(array)).to(target.dtype))


def _unfold_norms(model: Any, batches: Iterable[Any]) -> int:
    """Set each BN so that, on these images' statistics, BN(conv(x)) == conv(x) + folded bias."""
    import torch

    sums: dict[str, list[Any]] = {}
    hooks = []
    for name, conv, _ in _conv_norm_pairs(model):
        def hook(_m: Any, _i: Any, out: Any, name: str = name) -> None:
            flat = out.detach().double().transpose(0, 1).reshape(out.shape[1], -1)
            acc = sums.setdefault(name, [0.0, 0.0, 0])
            acc[0] = acc[0] + flat.sum(1)
            acc[1] = acc[1] + (flat * flat).sum(1)
            acc[2] += flat.shape[1]
        hooks.append(conv.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        for batch in batches:
            model(batch)
    for h in hooks:
        h.remove()
    norms = 0
    with torch.no_grad():
        for name, _conv, norm in _conv_norm_pairs(model):
            s, sq, n = sums[name]
            mean = s / n
            var = (sq / n - mean * mean).clamp_min(1e-6)
            norm.weight.copy_(torch.sqrt(var + norm.eps).to(norm.weight.dtype))
            norm.bias.add_(mean.to(norm.bias.dtype))
            norm.running_mean.copy_(mean.to(norm.running_mean.dtype))
            norm.running_var.copy_(var.to(norm.running_var.dtype))
            norms += 1
    return norms


def image_batches(images: list[Path], imgsz: int, batch: int = 8) -> Iterator[Any]:
    """Letterboxed RGB 0-1 tensors of these images, as the trainer feeds them (square `imgsz`)."""
    import cv2
    import torch

    for start in range(0, len(images), batch):
        tensors = []
        for path in images[start:start + batch]:
            img = cv2.imread(str(path))
            if img is None:
                continue
            h, w = img.shape[:2]
            r = imgsz / max(h, w)
            img = cv2.resize(img, (max(1, round(w * r)), max(1, round(h * r))))
            canvas = np.full((imgsz, imgsz, 3), 114, np.uint8)
            canvas[: img.shape[0], : img.shape[1]] = img
            tensors.append(torch.from_numpy(canvas[:, :, ::-1].transpose(2, 0, 1).copy()).float() / 255.0)
        if tensors:
            yield torch.stack(tensors)


def _onnx_square_side(path: Path, default: int) -> int:
    """The ONNX file's fixed input side (exports here are square or dynamic), else `default`."""
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    values = [d.dim_value for d in dims[2:4]]
    return values[0] if values and values[0] > 0 and values[0] == values[-1] else default


def max_output_gap(model: Any, onnx_path: Path, batch: Any) -> float:
    """Largest absolute difference between the model's eval output and ONNX Runtime's on `batch`, relative to
    the output's scale (0 for a faithful restore; float16/float32 rounding gives about 1e-3)."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: batch.numpy().astype(np.float32)}
    expected = session.run(None, feed)[0]
    model.float().eval()
    with torch.no_grad():
        out = model(batch)
    got = (out[0] if isinstance(out, (list, tuple)) else out).numpy()
    if got.shape != expected.shape:
        raise OnnxWeightsError(f"output shapes differ: restored {got.shape}, ONNX {expected.shape}")
    return float(np.abs(got - expected).max() / max(1.0, float(np.abs(expected).max())))


def restore_checkpoint(onnx_path: Path, out: Path, *, arch: str, names: list[str], images: list[Path],
                       imgsz: int = 320) -> Restored:
    """Write an Ultralytics checkpoint at `out` holding the ONNX file's weights in `arch` (e.g. yolo11n.yaml)."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    if not images:
        raise OnnxWeightsError("need a few training images to unfold the batch norms; none were given")
    model = DetectionModel(arch, nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    weights = onnx_initializers(onnx_path)
    tensors = _load_folded(model, weights)
    norms = _unfold_norms(model, image_batches(images, imgsz))
    probe = next(image_batches(images[:1], _onnx_square_side(onnx_path, imgsz)))  # a static export takes batch 1
    gap = max_output_gap(model, onnx_path, probe)
    if gap > 1e-3:
        raise OnnxWeightsError(f"the restored model differs from the ONNX file by {gap:.2g} (relative): not restored")
    model.args = {"imgsz": imgsz}
    ckpt = {
        "date": datetime.now(timezone.utc).isoformat(),
        "epoch": -1,
        "model": model.half(),
        "ema": None,
        "optimizer": None,
        "train_args": {"imgsz": imgsz},
        "restored_from_onnx": str(onnx_path),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    return Restored(checkpoint=out, tensors=tensors, norms=norms, images=len(images), gap=gap)
