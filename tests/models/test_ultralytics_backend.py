"""UltralyticsDetector against a stand-in `ultralytics` module (the real one pulls in torch)."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridwatch.models.base import Detector, ModelConfigError, ModelIntegrityError
from gridwatch.models.ultralytics_backend import UltralyticsDetector

NAMES = {0: "car", 1: "person", 2: "litter", 3: "stall", 4: "wire"}


class _Tensor:
    """Enough of a torch tensor: ``.cpu().numpy()``."""

    def __init__(self, values: list[Any]) -> None:
        self._array = np.asarray(values, dtype=np.float32)

    def cpu(self) -> _Tensor:
        return self

    def numpy(self) -> np.ndarray:
        return self._array


class _YOLO:
    """Records predict() keyword arguments; returns one car and one person."""

    last_kwargs: dict[str, Any] = {}  # noqa: RUF012 - shared on purpose: the test reads what the backend passed

    def __init__(self, path: str, task: str) -> None:
        assert task == "detect"
        self.names = dict(NAMES)
        self.overrides = {"imgsz": 640}

    def predict(self, image: np.ndarray, **kwargs: Any) -> list[Any]:
        _YOLO.last_kwargs = kwargs
        boxes = types.SimpleNamespace(
            xyxy=_Tensor([[10, 20, 110, 80], [120, 10, 140, 70]]),
            conf=_Tensor([0.9, 0.6]),
            cls=_Tensor([0, 1]),
        )
        return [types.SimpleNamespace(boxes=boxes)]


@pytest.fixture
def fake_ultralytics(monkeypatch: pytest.MonkeyPatch) -> type[_YOLO]:
    monkeypatch.setitem(sys.modules, "ultralytics", types.SimpleNamespace(YOLO=_YOLO))
    return _YOLO


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "best.pt"
    path.write_bytes(b"pretend weights")
    return path


def test_detect_converts_results_once_at_the_boundary(fake_ultralytics: type[_YOLO], weights: Path) -> None:
    detector = UltralyticsDetector.from_path(weights, conf_threshold=0.3, class_filter=["person", "car"])
    assert isinstance(detector, Detector)
    assert detector.info.class_names == tuple(NAMES.values()) and detector.info.input_size == (640, 640)
    assert detector.info.sha256 == hashlib.sha256(b"pretend weights").hexdigest()
    det = detector.detect(np.zeros((100, 160, 3), dtype=np.uint8))
    assert det.xyxy.dtype == np.float32 and det.xyxy.tolist() == [[10, 20, 110, 80], [120, 10, 140, 70]]
    assert det.data["class_name"].tolist() == ["car", "person"]
    assert fake_ultralytics.last_kwargs["conf"] == 0.3 and fake_ultralytics.last_kwargs["classes"] == [1, 0]
    assert fake_ultralytics.last_kwargs["verbose"] is False


def test_manifest_beside_the_weights_is_checked(
    fake_ultralytics: type[_YOLO], weights: Path, make_manifest: Callable[..., dict[str, Any]]
) -> None:
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    manifest = weights.with_suffix(".json")
    manifest.write_text(json.dumps(make_manifest(sha256=sha, name="demo", input_size=[320, 320])))
    detector = UltralyticsDetector.from_path(weights)
    assert (detector.info.name, detector.info.input_size) == ("demo", (320, 320))

    manifest.write_text(json.dumps(make_manifest(sha256="f" * 64)))
    with pytest.raises(ModelIntegrityError):
        UltralyticsDetector.from_path(weights)

    manifest.write_text(json.dumps(make_manifest(sha256=sha, classes=["car", "person"])))
    with pytest.raises(ModelConfigError, match="classes"):
        UltralyticsDetector.from_path(weights)
