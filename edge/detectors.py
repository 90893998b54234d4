"""Several detectors per camera, each at its own rate: the site's `detector:` / `detectors:` and
`cameras[].detectors` (`[{name, every_s}]`).

A gateway may run a COCO person/vehicle model on every analysed frame and a street model (garbage, bins) every few
seconds: garbage and bins change over minutes. `CameraDetectors.detect(image, ts)` runs the detectors that are due
on this frame and returns one `Detections` with, per row, the `detector` that found it and `detection_age_s`, the
seconds since that detector's run (0 = found on this frame). A slower detector's last detections stay valid until
its next run, so the tracker and the rules see them on every frame in between, as if the model had run.

Class names: the camera's classes are the union of its detectors' classes (after `rename`), in detector order, and
`class_id` indexes that union. A name two models share is one class: where both find the same object (boxes of that
name overlapping more than `SAME_OBJECT_IOU`), the fresher box is kept (then the more confident); boxes of one
detector never suppress each other (its own NMS ran). To keep a class apart, `rename` it on one detector
(`rename: {person: street_person}`). Each event names the model that found its subject's class (the first of the
camera's detectors that has it; scene-change regions: the first detector).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import supervision as sv

from gridwatch.edge.config import DEFAULT_DETECTOR, CameraConfig, ConfigError, SiteConfig
from gridwatch.models.base import Detector, ModelInfo
from gridwatch.models.classes import class_lists, verify_classes_known
from gridwatch.models.registry import OnnxDetectorSpec, UltralyticsDetectorSpec, load_detector

SAME_OBJECT_IOU = 0.5
"""Boxes of one class name from two detectors overlapping more than this are one object."""

DetectorSet = Mapping[str, Detector]
"""The site's loaded detectors by name (`load_detectors`)."""


def spec_path(name: str) -> str:
    """Where the detector called `name` is configured, for error messages."""
    return "detector" if name == DEFAULT_DETECTOR else f"detectors.{name}"


def load_detectors(cfg: SiteConfig) -> dict[str, Detector]:
    """Every detector of the site, by name (the `detector:` section as 'default' first).

    Each camera's class lists (rules' `classes`, `object_classes`, ...) are checked against the union of the
    classes of the detectors that camera runs, so a class no detector of the camera reports fails at start-up."""
    specs = cfg.detector_specs()
    loaded = {name: load_detector(spec, path=spec_path(name)) for name, spec in specs.items()}
    for i, cam in enumerate(cfg.cameras):
        names = [entry.name for entry in cfg.camera_detectors(cam)]
        reported: list[str] = []
        for name in names:
            reported += [c for c in reported_classes(specs[name], loaded[name]) if c not in reported]
        explicit, default = class_lists(cam, f"cameras.{i}.")
        what = loaded[names[0]].info.name if len(names) == 1 else f"the detectors {names} of camera {cam.id!r}"
        verify_classes_known(explicit, reported, model=what, defaults=default)
    return loaded


def reported_classes(spec: OnnxDetectorSpec | UltralyticsDetectorSpec, detector: Detector) -> list[str]:
    """The class names `detector` reports: its `classes` filter (renamed) when set, else all its classes."""
    if spec.classes:
        return [spec.rename.get(c, c) for c in spec.classes]
    return list(detector.info.class_names)


@dataclass
class _Scheduled:
    name: str
    detector: Detector
    every_s: float
    last_ts: float | None = None
    last: sv.Detections | None = None

    def due(self, ts: float, slack_s: float) -> bool:
        """Whether to run on the frame at `ts`; `slack_s` (half a frame gap) keeps a 5 s rate from slipping a
        frame when capture timestamps jitter."""
        if self.last_ts is None or ts < self.last_ts:
            return True
        return ts - self.last_ts >= self.every_s - slack_s


class CameraDetectors:
    """One camera's detectors and their rates (see the module docstring)."""

    def __init__(self, entries: Sequence[tuple[str, Detector, float]], analysis_fps: float) -> None:
        if not entries:
            raise ConfigError("a camera needs at least one detector")
        self._runs = [_Scheduled(name, det, every_s) for name, det, every_s in entries]
        self._slack_s = 0.5 / analysis_fps
        names: list[str] = []
        for _, det, _ in entries:
            names += [n for n in det.info.class_names if n not in names]
        self.class_names: tuple[str, ...] = tuple(names)
        self._index = {n: i for i, n in enumerate(names)}

    @property
    def names(self) -> list[str]:
        return [run.name for run in self._runs]

    def infos(self) -> dict[str, ModelInfo]:
        """Each detector's model, by the site's name for it."""
        return {run.name: run.detector.info for run in self._runs}

    @property
    def info(self) -> ModelInfo:
        """The first detector's model: what an event names when no detector has its subject's class."""
        return self._runs[0].detector.info

    def model_for(self, class_name: str) -> ModelInfo:
        """The model of the first of the camera's detectors that has `class_name` (else the first detector's)."""
        for run in self._runs:
            if class_name in run.detector.info.class_names:
                return run.detector.info
        return self.info

    def detect(self, image: np.ndarray, ts: float) -> sv.Detections:
        """This frame's detections: fresh ones from the detectors due now, the others' last ones with their age."""
        parts: list[sv.Detections] = []
        for run in self._runs:
            if run.due(ts, self._slack_s):
                run.last, run.last_ts = self._tagged(run.detector.detect(image), run.name), ts
            assert run.last is not None and run.last_ts is not None
            parts.append(_aged(run.last, ts - run.last_ts))
        merged = parts[0] if len(parts) == 1 else _merge(parts)
        return merged if len(self._runs) == 1 else _drop_duplicates(merged)

    def _tagged(self, found: sv.Detections, name: str) -> sv.Detections:
        """`found` with `class_id` into the camera's class union and the `detector` name; of the data only
        `class_name` is kept (what backends set), so every detector's rows merge."""
        n = len(found)
        names = np.asarray(found.data.get("class_name", np.empty(0, dtype=str)), dtype=str).reshape(-1)
        return sv.Detections(
            xyxy=np.asarray(found.xyxy, dtype=np.float32).reshape(-1, 4),
            confidence=np.ones(n, np.float32) if found.confidence is None else np.asarray(found.confidence).copy(),
            class_id=np.array([self._index.get(str(c), -1) for c in names], dtype=np.int64),
            data={"class_name": names, "detector": np.array([name] * n, dtype=str)},
        )


def _aged(found: sv.Detections, age_s: float) -> sv.Detections:
    """A copy of `found` with `detection_age_s` set to `age_s` on every row."""
    return sv.Detections(
        xyxy=found.xyxy.copy(),
        confidence=None if found.confidence is None else found.confidence.copy(),
        class_id=None if found.class_id is None else found.class_id.copy(),
        data={**{k: np.asarray(v).copy() for k, v in found.data.items()},
              "detection_age_s": np.full(len(found), max(0.0, age_s), dtype=np.float64)},
    )


def _merge(parts: list[sv.Detections]) -> sv.Detections:
    """`sv.Detections.merge` that keeps the data keys when every part is empty (it would drop them)."""
    full = [p for p in parts if len(p)]
    if full:
        return sv.Detections.merge(full)
    return parts[0]


def _drop_duplicates(found: sv.Detections) -> sv.Detections:
    """Drop a box when a fresher (then more confident) box of the same class name from another detector covers the
    same object (IoU above `SAME_OBJECT_IOU`)."""
    n = len(found)
    if n < 2:
        return found
    names = np.asarray(found.data["class_name"]).astype(str)
    source = np.asarray(found.data["detector"]).astype(str)
    age = np.asarray(found.data["detection_age_s"], dtype=np.float64)
    conf = np.asarray(found.confidence if found.confidence is not None else np.ones(n), dtype=np.float64)
    iou = sv.box_iou_batch(found.xyxy, found.xyxy)
    keep = np.ones(n, dtype=bool)
    for i in np.lexsort((-conf, age)):  # fresher first, then more confident
        if not keep[i]:
            continue
        same = (names == names[i]) & (source != source[i]) & (iou[i] > SAME_OBJECT_IOU) & keep
        same[i] = False
        keep &= ~same
    if keep.all():
        return found
    out = found[keep]
    assert isinstance(out, sv.Detections)
    return out


def camera_detectors(camera: CameraConfig, detectors: Detector | DetectorSet) -> CameraDetectors:
    """The detectors `camera` runs, from the site's (`load_detectors`) or one detector given directly (a test's,
    a benchmark's), which then runs on every analysed frame."""
    fps = camera.analysis_fps
    if not isinstance(detectors, Mapping):
        if camera.detectors is not None and len(camera.detectors) > 1:
            raise ConfigError(f"camera {camera.id!r} runs the detectors {[d.name for d in camera.detectors]}; "
                              "pass them all by name, not one detector")
        name = camera.detectors[0].name if camera.detectors else DEFAULT_DETECTOR
        every = camera.detectors[0].every_s if camera.detectors else 0.0
        return CameraDetectors([(name, detectors, every)], fps)
    entries = camera.detectors if camera.detectors is not None else None
    if entries is None:
        return CameraDetectors([(name, det, 0.0) for name, det in detectors.items()], fps)
    missing = [e.name for e in entries if e.name not in detectors]
    if missing:
        raise ConfigError(f"camera {camera.id!r} runs the detectors {missing}, which were not loaded; "
                          f"loaded: {list(detectors)}")
    return CameraDetectors([(e.name, detectors[e.name], e.every_s) for e in entries], fps)
