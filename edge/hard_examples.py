"""Hard examples from the field: a camera-loop sink that saves sampled frames for labelling (`hard_examples:`).

A frame is a hard example when a detector was unsure on it (a fresh detection scoring below `low_conf_below`) or
when it shows scene-change regions, static for `region_min_age_s`, that no open incident names (the rules could
not say what they are). At most one frame per camera per `every_s` is saved, as `<dir>/<camera>/<stem>.jpg` plus a
`<stem>.json` sidecar (`gridwatch.models.hard_examples.HardExample`) holding every fresh box the models guessed,
the pre-labels for the labeller. `ExampleStore` keeps the folder under `max_mb` by deleting the oldest examples
(one store per gateway, shared by its cameras). `gridwatch data pull` collects them as a YOLO folder or a CVAT task.

A slower detector's persisted boxes (`detection_age_s` > 0) were found on an earlier frame: they are neither a
reason nor a label here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import supervision as sv

from gridwatch.edge.camera import Emitted, FrameResult
from gridwatch.edge.config import HardExamplesConfig
from gridwatch.models.base import ModelInfo
from gridwatch.models.hard_examples import GuessBox, HardExample, ModelStamp, Reason
from gridwatch.pipelines.rule_config import REGION_CLASS

log = logging.getLogger(__name__)


class ExampleStore:
    """The hard-example folder, bounded to `max_bytes`: the oldest examples (by file name, which starts with the
    wall time) are deleted first. Thread-safe: the gateway's cameras share one store."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root, self.max_bytes = root, max_bytes
        self.saved = self.deleted = 0
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        self._examples: dict[Path, int] = {}  # <folder>/<stem> -> bytes of its image and sidecar
        for path in root.rglob("*"):
            if path.is_file() and path.suffix in (".jpg", ".json"):
                stem = path.with_suffix("")
                self._examples[stem] = self._examples.get(stem, 0) + path.stat().st_size

    @property
    def size_bytes(self) -> int:
        return sum(self._examples.values())

    def save(self, camera_id: str, jpeg: bytes, example: HardExample) -> Path:
        folder = self.root / camera_id
        image = folder / example.image
        sidecar = image.with_suffix(".json")
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)
            image.write_bytes(jpeg)
            sidecar.write_text(example.model_dump_json(indent=1), encoding="utf-8")
            self._examples[image.with_suffix("")] = len(jpeg) + sidecar.stat().st_size
            self.saved += 1
            self._trim()
        return image

    def _trim(self) -> None:
        """Delete whole examples (image and sidecar together), oldest first, until the folder fits."""
        total = sum(self._examples.values())
        if total <= self.max_bytes:
            return
        for stem in sorted(self._examples, key=lambda p: p.name):
            if total <= self.max_bytes:
                break
            total -= self._examples.pop(stem)
            for suffix in (".jpg", ".json"):
                stem.with_name(stem.name + suffix).unlink(missing_ok=True)
            self.deleted += 1


class HardExampleSink:
    """Saves one camera's hard examples into `store` (see the module docstring)."""

    def __init__(self, cfg: HardExamplesConfig, store: ExampleStore, site_id: str, gateway_id: str,
                 models: Mapping[str, ModelInfo]) -> None:
        self.cfg, self.store = cfg, store
        self.site_id, self.gateway_id = site_id, gateway_id
        self.models = {name: ModelStamp(name=i.name, version=i.version, sha256=i.sha256) for name, i in models.items()}
        self._last_ts: float | None = None

    def on_frame(self, result: FrameResult) -> None:
        ts = result.frame.ts
        if self._last_ts is not None and ts - self._last_ts < self.cfg.every_s:
            return
        guesses = fresh_detections(result.detections)
        regions = unnamed_regions(result, self.cfg.region_min_age_s) if self.cfg.regions else []
        reasons: list[Reason] = []
        if any(g.confidence < self.cfg.low_conf_below for g in guesses):
            reasons.append("low_confidence")
        if regions:
            reasons.append("unnamed_region")
        if not reasons:
            return
        self._last_ts = ts
        self._save(result, reasons, guesses + regions)

    def _save(self, result: FrameResult, reasons: list[Reason], boxes: list[GuessBox]) -> None:
        frame = result.frame
        stem = f"{frame.wall.strftime('%Y%m%dT%H%M%S_%f')[:-3]}Z-{frame.index:06d}"  # no dot: one suffix only
        ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
        if not ok:
            log.warning("camera %s: could not encode hard example %s", result.camera_id, stem)
            return
        example = HardExample(
            site_id=self.site_id, gateway_id=self.gateway_id, camera_id=result.camera_id, frame_index=frame.index,
            ts=frame.ts, wall=frame.wall, image=f"{stem}.jpg", width=frame.width, height=frame.height,
            reasons=reasons, models=self.models, boxes=boxes,
        )
        self.store.save(result.camera_id, jpeg.tobytes(), example)

    def on_events(self, emitted: list[Emitted]) -> None:
        """Events carry no new frame."""

    def close(self) -> None:
        """The store stays open for the other cameras."""


def fresh_detections(found: sv.Detections) -> list[GuessBox]:
    """The detectors' boxes found on this very frame (`detection_age_s` 0 or absent), as guesses."""
    names = found.data.get("class_name")
    if names is None or len(found) == 0:
        return []
    ages = found.data.get("detection_age_s")
    detectors = found.data.get("detector")
    conf = found.confidence if found.confidence is not None else np.ones(len(found))
    out: list[GuessBox] = []
    for i in range(len(found)):
        if ages is not None and float(ages[i]) > 0:
            continue
        out.append(GuessBox(class_name=str(names[i]), confidence=round(float(conf[i]), 4),
                            box=_box(found.xyxy[i]), source="detector",
                            detector=str(detectors[i]) if detectors is not None else None))
    return out


def unnamed_regions(result: FrameResult, min_age_s: float) -> list[GuessBox]:
    """Tracked scene-change regions static for `min_age_s` that no open incident holds."""
    tracks = result.tracks
    names = tracks.data.get("class_name")
    if names is None or len(tracks) == 0 or tracks.tracker_id is None:
        return []
    named = {tid for inc in result.open_incidents for tid in inc.track_ids}
    ages = tracks.data.get("region_age_s")
    conf = tracks.confidence if tracks.confidence is not None else np.ones(len(tracks))
    out: list[GuessBox] = []
    for i in range(len(tracks)):
        age = float(ages[i]) if ages is not None else float("nan")
        if str(names[i]) != REGION_CLASS or int(tracks.tracker_id[i]) in named or not age >= min_age_s:
            continue
        out.append(GuessBox(class_name=REGION_CLASS, confidence=round(float(min(1.0, conf[i])), 4),
                            box=_box(tracks.xyxy[i]), source="region"))
    return out


def _box(xyxy: np.ndarray) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (round(float(v), 1) for v in xyxy)
    return (x1, y1, x2, y2)


def hard_example_sink(cfg: HardExamplesConfig, store: ExampleStore | None, site_id: str, gateway_id: str,
                      models: Mapping[str, ModelInfo]) -> HardExampleSink | None:
    """The sink when `hard_examples.enabled` (and a store exists), else None."""
    if not cfg.enabled or store is None:
        return None
    return HardExampleSink(cfg, store, site_id, gateway_id, models)


def example_store(cfg: HardExamplesConfig) -> ExampleStore | None:
    return ExampleStore(cfg.dir, int(cfg.max_mb * 1_000_000)) if cfg.enabled else None
