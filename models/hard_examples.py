"""Hard examples from the field: the format the edge saves them in, and reading a folder of them back.

A gateway (`gridwatch.edge.hard_examples`) saves, per sampled frame, the frame as `<stem>.jpg` and a sidecar
`<stem>.json` (a `HardExample`): why it was saved and every box the models guessed on it (fresh detections with
their class, score and detector; scene-change regions no rule named, as `unknown_object`). `gridwatch data pull`
(`gridwatch.models.pull`) turns a folder of them, copied off one or many gateways, into a labelling task.

Example sidecar::

    {"version": 1, "site_id": "s1", "gateway_id": "gw1", "camera_id": "cam1", "frame_index": 120, "ts": 24.0,
     "wall": "2026-11-30T08:00:24Z", "image": "20261130T080024_000Z-000120.jpg", "width": 640, "height": 360,
     "reasons": ["low_confidence"], "models": {"coco": {"name": "yolox-nano-coco80", "version": "0.1.1", ...}},
     "boxes": [{"class_name": "car", "confidence": 0.34, "box": [10, 20, 80, 60], "source": "detector",
                "detector": "coco"}]}
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridwatch.models.base import ModelConfigError

Reason = Literal["low_confidence", "unnamed_region"]
FORMAT_VERSION: Literal[1] = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelStamp(_Model):
    name: str
    version: str
    sha256: str


class GuessBox(_Model):
    """One box a model (or the scene-change stage) put on the frame: a pre-label for the labeller to fix."""

    class_name: str = Field(min_length=1)
    confidence: float = Field(ge=0, le=1)
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in pixels of the saved image.")
    source: Literal["detector", "region"]
    detector: str | None = Field(None, description="The site's name of the detector that found it (regions: none).")


class HardExample(_Model):
    version: Literal[1] = FORMAT_VERSION
    site_id: str
    gateway_id: str
    camera_id: str
    frame_index: int = Field(ge=0)
    ts: float = Field(description="Capture time in seconds (the camera's clock).")
    wall: datetime
    image: str = Field(min_length=1, description="The JPEG's file name, next to this sidecar.")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    reasons: list[Reason] = Field(min_length=1)
    models: dict[str, ModelStamp] = Field(default_factory=dict, description="The camera's detectors by name.")
    boxes: list[GuessBox] = Field(default_factory=list)


def read_examples(folder: Path) -> list[tuple[Path, HardExample]]:
    """Every (image path, sidecar) under `folder` (any depth), in path order. A sidecar that is not valid, or whose
    image is missing, is an error naming the file: a labelling task must not silently lose frames."""
    if not folder.is_dir():
        raise ModelConfigError(f"{folder}: no such folder of hard examples (copy a gateway's hard_examples.dir)")
    out: list[tuple[Path, HardExample]] = []
    for sidecar in sorted(folder.rglob("*.json")):
        try:
            example = HardExample.model_validate(json.loads(sidecar.read_text(encoding="utf-8")))
        except (ValueError, ValidationError) as exc:
            raise ModelConfigError(f"{sidecar}: not a hard-example sidecar: {exc}") from None
        image = sidecar.with_name(example.image)
        if not image.is_file():
            raise ModelConfigError(f"{sidecar}: its image {example.image} is missing next to it")
        out.append((image, example))
    return out
