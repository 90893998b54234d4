"""`gridwatch analyze CLIP --config SITE.yaml --camera ID --out DIR`: the edge pipeline on one clip, offline.

No broker: every event is written to `DIR/incidents.jsonl` (one `IncidentEvent` per line), each started
incident's snapshot to `DIR/snapshots/<incident_id>.jpg`, and the review video to `DIR/annotated.mp4`. This is
how engineers check a camera's zones and thresholds, and how accuracy is measured on real clips.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gridwatch.calibration.grid import GridLayer
from gridwatch.edge.camera import CameraPipeline, Emitted, FrameResult
from gridwatch.edge.config import SiteConfig
from gridwatch.edge.evidence import annotate, save_snapshot
from gridwatch.edge.sources import FileSource
from gridwatch.models.base import Detector
from gridwatch.models.registry import load_detector
from gridwatch.wire.events import IncidentEvent


@dataclass(frozen=True)
class AnalyzeReport:
    frames_decoded: int
    frames_analysed: int
    seconds: float
    events: list[IncidentEvent]

    @property
    def analysed_fps(self) -> float:
        return self.frames_analysed / self.seconds if self.seconds > 0 else 0.0

    @property
    def incidents(self) -> dict[str, list[IncidentEvent]]:
        out: dict[str, list[IncidentEvent]] = {}
        for e in self.events:
            out.setdefault(e.incident_id, []).append(e)
        return out


class VideoSink:
    """Annotated review video; written at the analysis rate so it plays in real time."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise RuntimeError(f"cannot write video {self.path}")
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def load_grid(cfg: SiteConfig) -> GridLayer | None:
    return GridLayer.from_geojson(cfg.grid_geojson) if cfg.grid_geojson else None


def analyze_clip(
    clip: Path, cfg: SiteConfig, camera_id: str, out: Path, *, detector: Detector | None = None,
    progress: bool = True, write_video: bool = True, start_wall: datetime | None = None,
    on_emitted: Callable[[Emitted], None] | None = None,
) -> AnalyzeReport:
    camera = cfg.camera(camera_id)
    detector = detector or load_detector(cfg.detector, site=cfg)
    pipeline = CameraPipeline(cfg.site_id, cfg.gateway_id, camera, detector,
                              grid=load_grid(cfg), jpeg_quality=cfg.evidence.jpeg_quality)
    source = FileSource(clip, camera_id, start_wall=start_wall or datetime.now(timezone.utc),
                        sample_fps=camera.analysis_fps)
    out.mkdir(parents=True, exist_ok=True)
    sink = VideoSink(out / "annotated.mp4", camera.analysis_fps) if write_video else None
    events: list[IncidentEvent] = []
    t0, decoded, analysed = time.perf_counter(), 0, 0
    with (out / "incidents.jsonl").open("w", encoding="utf-8") as jsonl, _progress(progress) as bar:
        task = bar.add_task(f"analyse {clip.name}", total=source.frame_count or None)
        for frame in source:
            decoded = frame.index + 1
            bar.update(task, completed=decoded)
            result = pipeline.process(frame)
            if result is None:
                continue
            analysed += 1
            _record(result.emitted, jsonl, out, events, on_emitted)
            if sink:
                sink.write(_annotated(result, pipeline))
        _record(pipeline.flush("source_ended"), jsonl, out, events, on_emitted)
        decoded = source.stats.frames
    if sink:
        sink.close()
    return AnalyzeReport(decoded, analysed, time.perf_counter() - t0, events)


def _annotated(result: FrameResult, pipeline: CameraPipeline) -> np.ndarray:
    caption = f"{pipeline.camera.id} t={result.frame.ts:6.1f}s open incidents: {len(pipeline.active)}"
    return annotate(result.frame.image, result.detections, pipeline.zones, pipeline.active, caption)


def _record(
    emitted: list[Emitted], jsonl: TextIO, out: Path, events: list[IncidentEvent],
    on_emitted: Callable[[Emitted], None] | None,
) -> None:
    for item in emitted:
        events.append(item.event)
        jsonl.write(item.event.to_json() + "\n")
        if item.snapshot is not None:
            save_snapshot(item.snapshot, out / "snapshots", item.event.incident_id)
        if on_emitted:
            on_emitted(item)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        disable=not enabled, transient=False,
    )
