"""Detector settings (the site config's ``detector:`` section) and the registry that builds detectors.

The backend is chosen by ``type`` (a pydantic discriminated union), and each type maps to one factory in
`FACTORIES`, so adding a backend is one spec class plus one entry. Example::

    detector:
      type: onnx
      model: /opt/gridwatch/models/gridwatch-demo-yolo11n.onnx
      conf: 0.35
      classes: [car, person]
      threads: 2
      tta: flip        # run each frame and its mirror (2x inference), keep the best box per object
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from gridwatch.models.base import Detector
from gridwatch.models.classes import class_lists, verify_classes_known
from gridwatch.models.onnx_backend import OnnxDetector
from gridwatch.models.rename import RenamedDetector, check_rename
from gridwatch.models.tta import TTA_MODES, TtaMode, with_tta
from gridwatch.models.ultralytics_backend import UltralyticsDetector  # cheap: ultralytics itself is imported lazily


class _DetectorSpecBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Path = Field(
        title="Model file", description="Path to the weights (.onnx for type onnx, .pt for ultralytics)."
    )
    manifest: Path | None = Field(
        default=None,
        title="Manifest file",
        description="Model manifest (JSON/YAML). Default: the file named like the model with a .json suffix.",
    )
    conf: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        title="Confidence threshold",
        description="Minimum detection score kept. Lower finds more objects and raises more false alarms; "
        "incident rules add dwell on top, so a moderate value is usually enough.",
    )
    iou: float = Field(
        default=0.45,
        gt=0.0,
        le=1.0,
        title="NMS IoU threshold",
        description="Overlap above which a weaker box of the same class is dropped as a duplicate. Lower "
        "merges more: too low merges cars parked nose to tail in a perspective view.",
    )
    classes: list[str] | None = Field(
        default=None,
        min_length=1,
        title="Class filter",
        description="Class names to report (must exist in the model); null reports every class.",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=64,
        title="Inference threads",
        description="CPU threads for inference. Null uses every core, which can starve frame decoding on a "
        "small gateway; 1-2 leaves room for the rest of the pipeline.",
    )
    verify_sha256: bool = Field(
        default=True,
        title="Verify weights",
        description="Refuse weights whose sha256 differs from the manifest. Disable only while iterating locally.",
    )
    rename: dict[str, str] = Field(
        default_factory=dict,
        title="Class renames",
        description="Report some of the model's classes under other names, e.g. {person: street_person}. Classes "
        "of the same name from two detectors are one class (their boxes are merged); renaming keeps them apart.",
    )
    tta: TtaMode = Field(
        default="none",
        title="Test-time augmentation",
        description="'flip': run each frame and its left-right mirror (one batch of two on a dynamic-batch "
        "export, else two runs); 'multiscale': the frame, the frame shrunk to 0.83 and mirrored, and the frame "
        "shrunk to 0.67 (Ultralytics' augmented inference; one batch of three); either keeps the best box per "
        "object (class-aware NMS at `iou`). Costs 2x or 3x the inference for points of AP (the street model's "
        "card has the numbers): worth it for a detector that runs every few seconds "
        "(`cameras[].detectors[].every_s`), rarely for one on every analysed frame.",
    )

    @field_validator("tta", mode="before")
    @classmethod
    def _known_tta(cls, value: object) -> object:
        if value not in TTA_MODES:
            raise ValueError(f"{value!r} is not a test-time augmentation; use 'flip' (the frame and its mirror, "
                             "2x inference), 'multiscale' (the frame at 1, 0.83 mirrored and 0.67; 3x) or 'none' "
                             "(the default), or remove the field")
        return value


class OnnxDetectorSpec(_DetectorSpecBase):
    """ONNX Runtime backend: the edge default."""

    type: Literal["onnx"] = Field(description="Run an ONNX export with ONNX Runtime.")
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        min_length=1,
        max_length=8,
        title="Execution providers",
        description="ONNX Runtime providers in preference order, e.g. [TensorrtExecutionProvider, "
        "CUDAExecutionProvider, CPUExecutionProvider]; unavailable ones are skipped, CPU is the fallback.",
    )


class UltralyticsDetectorSpec(_DetectorSpecBase):
    """Ultralytics backend for .pt weights; needs the train extra (torch)."""

    type: Literal["ultralytics"] = Field(description="Run .pt weights with Ultralytics (needs torch).")
    device: str = Field(
        default="cpu",
        min_length=1,
        max_length=32,
        title="Torch device",
        description="Device for inference: 'cpu', '0' / 'cuda:0' for the first GPU.",
    )


DetectorSpec = Annotated[OnnxDetectorSpec | UltralyticsDetectorSpec, Field(discriminator="type")]

DETECTOR_SPEC_ADAPTER: TypeAdapter[OnnxDetectorSpec | UltralyticsDetectorSpec] = TypeAdapter(DetectorSpec)


def parse_detector_spec(data: Any) -> OnnxDetectorSpec | UltralyticsDetectorSpec:
    """Validate a plain mapping (e.g. from YAML) into the matching spec; raises pydantic.ValidationError."""
    return DETECTOR_SPEC_ADAPTER.validate_python(data)


def _load_onnx(cfg: OnnxDetectorSpec) -> Detector:
    return OnnxDetector.from_path(
        cfg.model,
        manifest_path=cfg.manifest,
        conf_threshold=cfg.conf,
        iou_threshold=cfg.iou,
        class_filter=cfg.classes,
        threads=cfg.threads,
        providers=cfg.providers,
        verify_sha256=cfg.verify_sha256,
    )


def _load_ultralytics(cfg: UltralyticsDetectorSpec) -> Detector:
    return UltralyticsDetector.from_path(
        cfg.model,
        manifest_path=cfg.manifest,
        conf_threshold=cfg.conf,
        iou_threshold=cfg.iou,
        class_filter=cfg.classes,
        threads=cfg.threads,
        device=cfg.device,
        verify_sha256=cfg.verify_sha256,
    )


FACTORIES: dict[str, Callable[[Any], Detector]] = {
    "onnx": _load_onnx,
    "ultralytics": _load_ultralytics,
}


def load_detector(
    cfg: OnnxDetectorSpec | UltralyticsDetectorSpec, *, site: BaseModel | None = None, path: str = "detector",
) -> Detector:
    """Build the detector `cfg` describes; raises a `models.base.ModelError` subclass when it cannot.

    `site`: the whole config the detector serves (the edge's `SiteConfig`). Every class list in it (incident
    rules' `classes`, `object_classes`, ...) is checked against the model's classes, or against
    `detector.classes` when that filter is set, so a misspelt class fails at start-up instead of never matching.
    (A site with several detectors checks each camera against the union of its detectors' classes instead:
    `gridwatch.edge.detectors.load_detectors`.) `path`: where `cfg` sits in the site config, for error messages.
    """
    detector = with_tta(FACTORIES[cfg.type](cfg), cfg.tta, cfg.iou)
    if cfg.rename:
        check_rename(cfg.rename, detector.info.class_names, where=f"{path}.rename", model=detector.info.name)
        detector = RenamedDetector(detector, cfg.rename)
    if site is not None:
        explicit, default = class_lists(site)
        explicit.pop("detector.classes", None)
        reported = [cfg.rename.get(c, c) for c in cfg.classes] if cfg.classes else list(detector.info.class_names)
        what = f"{detector.info.name} (as filtered by detector.classes)" if cfg.classes else detector.info.name
        verify_classes_known(explicit, reported, model=what, defaults=default)
    return detector

