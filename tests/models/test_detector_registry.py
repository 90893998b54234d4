"""DetectorSpec validation, load_detector, and the rule that the edge never imports torch."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from gridwatch.models.base import Detector, ModelLoadError
from gridwatch.models.onnx_backend import OnnxDetector
from gridwatch.models.registry import (
    DETECTOR_SPEC_ADAPTER,
    OnnxDetectorSpec,
    UltralyticsDetectorSpec,
    load_detector,
    parse_detector_spec,
)

REPO = Path(__file__).resolve().parents[2]
ModelFactory = Callable[..., tuple[Path, Path]]


def test_onnx_spec_defaults() -> None:
    spec = parse_detector_spec({"type": "onnx", "model": "m.onnx"})
    assert isinstance(spec, OnnxDetectorSpec)
    assert (spec.conf, spec.iou, spec.classes, spec.threads, spec.manifest) == (0.25, 0.45, None, None, None)
    assert spec.providers == ["CPUExecutionProvider"] and spec.verify_sha256 is True


def test_ultralytics_spec() -> None:
    spec = parse_detector_spec({"type": "ultralytics", "model": "best.pt", "device": "cuda:0", "classes": ["car"]})
    assert isinstance(spec, UltralyticsDetectorSpec) and spec.device == "cuda:0"


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"type": "tensorrt", "model": "m"}, "type"),
        ({"model": "m.onnx"}, "type"),
        ({"type": "onnx"}, "model"),
        ({"type": "onnx", "model": "m", "conf": 1.5}, "conf"),
        ({"type": "onnx", "model": "m", "iou": 0}, "iou"),
        ({"type": "onnx", "model": "m", "threads": 0}, "threads"),
        ({"type": "onnx", "model": "m", "classes": []}, "classes"),
        ({"type": "onnx", "model": "m", "device": "cpu"}, "device"),  # ultralytics-only field
        ({"type": "onnx", "model": "m", "provider": ["x"]}, "provider"),  # typo
    ],
)
def test_invalid_specs_name_the_field(data: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        parse_detector_spec(data)


def test_every_field_is_documented_for_the_site_config() -> None:
    schema = DETECTOR_SPEC_ADAPTER.json_schema()
    for name, definition in schema["$defs"].items():
        assert definition.get("additionalProperties") is False, name
        for field, prop in definition["properties"].items():
            assert prop.get("description"), f"{name}.{field} has no description"


def test_load_detector_builds_an_onnx_detector(tiny_model: ModelFactory) -> None:
    raw = np.zeros((1, 9, 4), dtype=np.float32)
    raw[0, :4, 0] = (32, 32, 16, 16)
    raw[0, 4 + 1, 0] = 0.8  # person
    onnx_path, manifest_path = tiny_model(raw)
    spec = parse_detector_spec(
        {"type": "onnx", "model": str(onnx_path), "manifest": str(manifest_path), "threads": 1, "conf": 0.5}
    )
    detector = load_detector(spec)
    assert isinstance(detector, OnnxDetector) and isinstance(detector, Detector)
    assert detector.detect(np.zeros((64, 64, 3), dtype=np.uint8)).data["class_name"].tolist() == ["person"]


@pytest.mark.skipif(importlib.util.find_spec("ultralytics") is not None, reason="ultralytics is installed")
def test_ultralytics_without_the_extra_is_a_clear_load_error(tmp_path: Path) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not really weights")
    with pytest.raises(ModelLoadError, match="train extra"):
        load_detector(UltralyticsDetectorSpec(type="ultralytics", model=weights))


def test_edge_imports_do_not_pull_in_torch_or_ultralytics() -> None:
    code = (
        "import sys\n"
        "import models.base, models.decoders, models.manifest, models.onnx_backend, models.registry\n"
        "import models.fake, models.ultralytics_backend\n"
        "bad = sorted(m for m in ('torch', 'ultralytics') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
