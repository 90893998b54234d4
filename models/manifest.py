"""Model manifests: the facts about a weights file that the file itself does not carry.

An ONNX export knows its tensor shapes but not what its classes are called, how its input was normalised or
how its output must be decoded. The manifest says so, next to the weights as ``<stem>.json`` (``.yaml`` is
also read), and pins the weights by sha256 so a gateway never runs a file other than the one that was
evaluated.

Only ``metrics`` and ``training`` accept free-form content (evaluation numbers, data set and recipe notes);
every other key is checked, and unknown top-level keys are rejected so a typo cannot silently change
preprocessing.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gridwatch.models.base import ModelConfigError

DecoderName = Literal["ultralytics", "yolox", "yolov5"]
MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")


class ModelManifest(BaseModel):
    """Everything needed to preprocess, decode and identify one exported detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Model name reported with every event, e.g. 'yolox-nano-coco80'.")
    version: str = Field(min_length=1, description="Model version reported with every event.")
    decoder: DecoderName = Field(
        description="Output layout: 'ultralytics' (YOLOv8/11, (1,4+nc,N)), 'yolox' (raw grid, (1,N,5+nc)), "
        "'yolov5' ((1,N,5+nc) with objectness)."
    )
    input_size: tuple[int, int] = Field(description="Network input [width, height] in pixels.")
    classes: list[str] = Field(min_length=1, description="Class names in output order (index = class id).")
    color: Literal["BGR", "RGB"] = Field(description="Channel order the network was trained on.")
    scale: Literal["0-1", "0-255"] = Field(description="Pixel value range the network expects.")
    letterbox: Literal["center", "top-left"] = Field(
        description="Where the resized image sits in the padded input: Ultralytics centres, YOLOX pads "
        "right/bottom only. Wrong choice shifts every box."
    )
    pad_value: int = Field(ge=0, le=255, description="Grey level of the letterbox padding (114 for YOLO family).")
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="Lower-case hex sha256 of the weights file this manifest describes.",
    )
    licence: str = Field(min_length=1, description="Licence of the weights (SPDX id or short text).")
    metrics: dict[str, Any] | None = Field(default=None, description="Free-form evaluation results.")
    training: dict[str, Any] | None = Field(default=None, description="Free-form training provenance.")

    @field_validator("input_size")
    @classmethod
    def _input_size_positive(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 8 or max(value) > 8192:
            raise ValueError(f"input_size {list(value)} must be [width, height] with each side in 8..8192")
        return value

    @field_validator("classes")
    @classmethod
    def _classes_unique(cls, value: list[str]) -> list[str]:
        dupes = sorted(name for name, count in Counter(value).items() if count > 1)
        if dupes:
            raise ValueError(f"class names must be unique; duplicated: {dupes}")
        if any(not c.strip() for c in value):
            raise ValueError("class names must be non-empty")
        return value


def manifest_path_for(model_path: str | Path) -> Path:
    """Return the manifest that sits next to `model_path` (``<stem>.json`` first, then YAML).

    Raise ModelConfigError naming the candidates when none exists.
    """
    model_path = Path(model_path)
    candidates = [model_path.with_suffix(s) for s in MANIFEST_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    names = ", ".join(str(c) for c in candidates)
    raise ModelConfigError(
        f"no manifest for {model_path}: looked for {names}; put the model's manifest next to it or set "
        f"detector.manifest in the site config (manifests shipped with gridwatch: {', '.join(shipped_manifests())})"
    )


def shipped_manifests() -> list[str]:
    """The manifests that come with gridwatch (models/manifests/*.json, models/demo/*.json), as paths."""
    here = Path(__file__).resolve().parent
    return [str(p) for folder in ("manifests", "demo") for p in sorted((here / folder).glob("*.json"))]


def load_manifest(path: str | Path) -> ModelManifest:
    """Read and validate a manifest from JSON or YAML (chosen by suffix).

    Raise ModelConfigError with the file path and the failing field when it is unreadable or invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelConfigError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise ModelConfigError(
            f"{path} is not a manifest (not UTF-8 text; a model file?); pass the model's manifest JSON, "
            f"for example one of {', '.join(shipped_manifests())}"
        ) from None
    try:
        raw = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ModelConfigError(f"manifest {path} is not valid {path.suffix.lstrip('.').upper()}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelConfigError(f"manifest {path} must be a mapping at the top level")
    try:
        return ModelManifest.model_validate(raw)
    except ValidationError as exc:
        raise ModelConfigError(f"invalid manifest {path}:\n{exc}") from exc
