"""Fixtures for the detector tests: the shared real data, and tiny ONNX graphs built on the fly.

`shared_data` FAILS (never skips) when the real data is missing: CI must not go green by not testing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
YOLOX_MANIFEST = REPO / "models" / "manifests" / "yolox_nano_coco80.json"
DEMO_CLASSES = ["car", "person", "litter", "stall", "wire"]


def shared_real_dir() -> Path:
    """``$GRIDWATCH_SHARED/data/real``, default ``<repo>/../shared/data/real``."""
    return Path(os.environ.get("GRIDWATCH_SHARED", str(REPO.parent / "shared"))) / "data" / "real"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real test data (videos, YOLOX-Nano); never copied into the repo."""
    root = shared_real_dir()
    if not (root / "models" / "yolox_nano.onnx").is_file():
        pytest.fail(
            f"real test data not found at {root} (need models/yolox_nano.onnx and videos/); "
            "set GRIDWATCH_SHARED to the directory that contains data/real"
        )
    return root


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_dict(**overrides: Any) -> dict[str, Any]:
    """A valid manifest in the demo model's shape; override any key."""
    base: dict[str, Any] = {
        "name": "tiny-test",
        "version": "0.0.1",
        "decoder": "ultralytics",
        "input_size": [64, 64],
        "classes": list(DEMO_CLASSES),
        "color": "RGB",
        "scale": "0-1",
        "letterbox": "center",
        "pad_value": 114,
        "sha256": "0" * 64,
        "licence": "CC0-1.0",
        "metrics": {"map50": 0.5},
        "training": {"epochs": 1},
    }
    base.update(overrides)
    return base


def build_constant_onnx(
    path: Path, output: np.ndarray, input_hw: tuple[Any, Any] = (64, 64), fp16: bool = False
) -> Path:
    """Write an ONNX graph ``images[1,3,h,w] -> output`` whose output is `output` (plus 0 * mean(images)).

    The input takes part in the computation so ORT runs a real graph on the real preprocessed tensor. `fp16`
    makes input and output float16, like a half-precision export for a Jetson.
    """
    from onnx import TensorProto, helper, numpy_helper, save_model

    dtype = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    const = numpy_helper.from_array(output.astype(np.float16 if fp16 else np.float32), name="raw")
    zero = numpy_helper.from_array(np.zeros((), dtype=np.float16 if fp16 else np.float32), name="zero")
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["raw", "nothing"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [helper.make_tensor_value_info("images", dtype, [1, 3, *input_hw])],
        [helper.make_tensor_value_info("output", dtype, list(output.shape))],
        initializer=[const, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    save_model(model, str(path))
    return path


ModelFactory = Callable[..., tuple[Path, Path]]


@pytest.fixture
def tiny_model(tmp_path: Path) -> ModelFactory:
    """Factory: ``tiny_model(output, input_hw=(64, 64), fp16=False, **manifest_overrides)``.

    Returns ``(onnx_path, manifest_path)``.

    The manifest sits next to the model as ``<stem>.json`` and carries the model's real sha256 unless the
    overrides say otherwise.
    """

    def make(
        output: np.ndarray, input_hw: tuple[Any, Any] = (64, 64), fp16: bool = False, **overrides: Any
    ) -> tuple[Path, Path]:
        onnx_path = build_constant_onnx(tmp_path / "tiny.onnx", output, input_hw, fp16)
        manifest = manifest_dict(sha256=sha256_of(onnx_path))
        manifest.update(overrides)
        manifest_path = onnx_path.with_suffix(".json")
        manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
        return onnx_path, manifest_path

    return make


@pytest.fixture
def make_manifest() -> Callable[..., dict[str, Any]]:
    """Factory for a valid manifest dict in the demo model's shape: ``make_manifest(**overrides)``."""
    return manifest_dict
