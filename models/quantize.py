"""Static INT8 quantisation of an exported detector with ONNX Runtime, calibrated on real images.

Calibration tensors are made by the edge's own `preprocess` (letterbox, colour, scale from the manifest), so the
activation ranges are the ones the gateway will feed. The detector's head after its last convolutions (box
decoding: DFL, concatenation, sigmoid) stays in float: quantising coordinates in input pixels next to class
scores in 0..1 with one scale ruins one or the other. Needs only onnxruntime (and onnx, in the dev/train extras).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from gridwatch.models.base import ModelConfigError
from gridwatch.models.decoders import preprocess
from gridwatch.models.manifest import ModelManifest


def calibration_tensors(images: Sequence[Path], manifest: ModelManifest) -> Iterator[np.ndarray]:
    """The (1, 3, h, w) float32 input of each readable image, preprocessed exactly as at run time."""
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            yield preprocess(image, manifest)


def float_head_nodes(model_path: Path) -> list[str]:
    """Names of the nodes to keep in float: the last Ultralytics layer's (`/model.N/`) non-Conv nodes and its DFL."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    layers = [int(m.group(1)) for n in graph.node if (m := re.match(r"/model\.(\d+)/", n.name))]
    if not layers:
        return []
    head = f"/model.{max(layers)}/"
    return [n.name for n in graph.node
            if n.name.startswith(head) and (n.op_type != "Conv" or "/dfl/" in n.name)]


def _at_least_opset13(src: Path, tmp: Path) -> Path:
    """Per-channel QDQ needs opset 13; older exports (the demo model is opset 12) are converted first."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(src))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    if opset >= 13:
        return src
    converted = tmp / "opset13.onnx"
    onnx.save(version_converter.convert_version(model, 13), str(converted))
    return converted


def quantize_int8(src: Path, dst: Path, manifest: ModelManifest, images: Sequence[Path]) -> Path:
    """Write a QDQ INT8 copy of `src` to `dst`, calibrated on `images` (a few hundred is plenty)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not images:
        raise ModelConfigError("INT8 needs calibration images: pass --data with a train (or val) split")
    import onnxruntime as ort

    input_name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = calibration_tensors(images, manifest)

        def get_next(self) -> dict[str, np.ndarray] | None:
            tensor = next(self._it, None)
            return None if tensor is None else {input_name: tensor}

    with tempfile.TemporaryDirectory(prefix="gridwatch-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(_at_least_opset13(src, Path(tmp))), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=float_head_nodes(prepared),
        )
    return dst
