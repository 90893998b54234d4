"""Ultralytics detector: runs ``.pt`` weights directly (the ``train`` extra: torch + ultralytics).

Meant for development and for checking an export against its source weights; gateways run the ONNX export.
Importing this module is cheap: ultralytics (and torch) are imported only inside
`UltralyticsDetector.from_path`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from gridwatch.models.base import ModelConfigError, ModelInfo, ModelLoadError, check_image, make_detections
from gridwatch.models.manifest import MANIFEST_SUFFIXES, ModelManifest, load_manifest
from gridwatch.models.onnx_backend import check_sha256, class_ids_for, file_sha256


def _import_yolo() -> Any:
    try:
        from ultralytics import YOLO  # lazy on purpose: torch must not load on the edge
    except ImportError as exc:
        raise ModelLoadError(
            "the 'ultralytics' detector needs the train extra (pip install 'gridwatch[train]'); "
            "on a gateway use type: onnx with an exported model instead"
        ) from exc
    return YOLO


def _optional_manifest(path: Path, manifest_path: str | Path | None) -> ModelManifest | None:
    if manifest_path is not None:
        return load_manifest(manifest_path)
    for suffix in MANIFEST_SUFFIXES:
        if path.with_suffix(suffix).is_file():
            return load_manifest(path.with_suffix(suffix))
    return None


def _imgsz(model: Any) -> tuple[int, int]:
    size = getattr(model, "overrides", {}).get("imgsz") or 640
    return (size, size) if isinstance(size, int) else (int(size[1]), int(size[0]))


class UltralyticsDetector:
    """Ultralytics `YOLO` weights behind the `Detector` protocol."""

    def __init__(
        self, model: Any, info: ModelInfo, conf: float, iou: float, class_ids: np.ndarray | None, device: str
    ) -> None:
        self._model = model
        self.info = info
        self.conf_threshold = conf
        self.iou_threshold = iou
        self._classes = None if class_ids is None else class_ids.tolist()
        self._device = device

    @classmethod
    def from_path(
        cls,
        weights_path: str | Path,
        manifest_path: str | Path | None = None,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        class_filter: Sequence[str] | None = None,
        threads: int | None = None,
        device: str = "cpu",
        verify_sha256: bool = True,
    ) -> UltralyticsDetector:
        """Load ``.pt`` weights; a manifest (``<stem>.json`` beside them, or `manifest_path`) is optional.

        With a manifest, the sha256 is verified and the class names must match the weights'; without one, name
        and names come from the weights themselves. `threads` caps torch's intra-op threads.
        """
        path = Path(weights_path)
        if not path.is_file():
            raise ModelLoadError(f"weights file not found: {path}")
        manifest = _optional_manifest(path, manifest_path)
        sha256 = check_sha256(path, manifest) if manifest and verify_sha256 else file_sha256(path)
        model = _import_yolo()(str(path), task="detect")
        if threads is not None:
            import torch  # only reachable with the train extra installed

            torch.set_num_threads(threads)
        names = tuple(str(model.names[i]) for i in sorted(model.names))
        if manifest is not None and tuple(manifest.classes) != names:
            raise ModelConfigError(f"{path}: weights classes {list(names)} != manifest classes {manifest.classes}")
        info = ModelInfo(
            name=manifest.name if manifest else path.stem,
            version=manifest.version if manifest else "unversioned",
            sha256=sha256,
            class_names=names,
            input_size=manifest.input_size if manifest else _imgsz(model),
            decoder="ultralytics",
        )
        ids = class_ids_for(class_filter, names)
        return cls(model, info, conf_threshold, iou_threshold, ids, device)

    def detect(self, image: np.ndarray) -> sv.Detections:
        """Detect objects in a BGR uint8 image (Ultralytics treats numpy input as BGR)."""
        check_image(image)
        w, h = self.info.input_size
        result = self._model.predict(
            image,
            conf=self.conf_threshold,
            iou=self.iou_threshold,
            classes=self._classes,
            imgsz=[h, w],
            device=self._device,
            verbose=False,
        )[0]
        boxes = result.boxes
        return make_detections(
            _to_numpy(boxes.xyxy),
            _to_numpy(boxes.conf),
            _to_numpy(boxes.cls).astype(np.int64),
            self.info.class_names,
        )


def _to_numpy(tensor: Any) -> np.ndarray:
    """torch tensor (any device) or array -> numpy."""
    if hasattr(tensor, "cpu"):
        tensor = tensor.cpu()
    return np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor)
