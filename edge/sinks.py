"""Sinks for the camera loop (`gridwatch.edge.loop.Sink`): where an analysed frame's result goes.

- `VideoSink`     the annotated review video (zones, tracks, open incidents), at the analysis rate;
- `JsonlSink`     every event as one JSON line plus each started incident's snapshot (`analyze`);
- `ProgressSink`  a rich progress bar over the source's frames;
- `CallbackSink`  hands each emitted event to a function (the demo's and tests' counters).

The outbox sink (the worker's: outbox rows, snapshot files, publisher wake-up) is in `sinks_outbox.py`.
Sinks see only `FrameResult`s and emitted events, never the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from gridwatch.edge.camera import Emitted, FrameResult
from gridwatch.edge.evidence import annotate, save_snapshot
from gridwatch.edge.sources import SourceStats
from gridwatch.errors import GridwatchError
from gridwatch.wire.events import IncidentEvent


class VideoWriteError(GridwatchError, RuntimeError):
    """The review video cannot be written (codec missing, folder not writable)."""


def render(result: FrameResult) -> np.ndarray:
    """The review frame for one analysed frame: zones, tracks and open incidents, with a caption."""
    caption = f"{result.camera_id} t={result.frame.ts:.1f}s open incidents: {len(result.open_incidents)}"
    regions = result.scene.regions if result.scene is not None else None
    if result.scene is not None and result.scene.paused:
        caption += " | scene change paused: view shifted"
    return annotate(result.frame.image, result.tracks, result.zones, result.open_incidents, caption, result.frame.ts,
                    regions)


class VideoSink:
    """Annotated review video; written at the analysis rate so it plays in real time."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            h, w = image.shape[:2]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise VideoWriteError(f"cannot write video {self.path}")
        self._writer.write(image)
        self.frames += 1

    def on_frame(self, result: FrameResult) -> None:
        self.write(render(result))

    def on_events(self, emitted: list[Emitted]) -> None:
        """Events outside a frame (the end-of-run flush) have no picture."""

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class JsonlSink:
    """`incidents.jsonl` (one `IncidentEvent` per line, flushed per event) and `snapshots/<incident_id>.jpg`."""

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.snapshots = out / "snapshots"
        self.events: list[IncidentEvent] = []
        self._file: TextIO = (out / "incidents.jsonl").open("w", encoding="utf-8")

    def on_frame(self, result: FrameResult) -> None:
        self.on_events(result.emitted)

    def on_events(self, emitted: list[Emitted]) -> None:
        for item in emitted:
            self.events.append(item.event)
            self._file.write(item.event.to_json() + "\n")
            if item.snapshot is not None:
                save_snapshot(item.snapshot, self.snapshots, item.event.incident_id)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class CallbackSink:
    """Calls `on_emitted` for every event (frame events and the final flush alike)."""

    def __init__(self, on_emitted: Callable[[Emitted], None]) -> None:
        self.on_emitted = on_emitted

    def on_frame(self, result: FrameResult) -> None:
        self.on_events(result.emitted)

    def on_events(self, emitted: list[Emitted]) -> None:
        for item in emitted:
            self.on_emitted(item)

    def close(self) -> None:
        """Nothing to release."""


class ProgressSink:
    """A rich progress bar: decoded frames of `total` (None for a live stream), with the events sent so far."""

    def __init__(self, label: str, stats: SourceStats, total: int | None, *, console: Console | None = None,
                 enabled: bool = True) -> None:
        self.label, self.stats = label, stats
        self.events = 0
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeRemainingColumn(), console=console, disable=not enabled, transient=False)
        self._task: TaskID = self._bar.add_task(label, total=total)
        self._bar.start()

    def on_frame(self, result: FrameResult) -> None:
        self.on_events(result.emitted)

    def on_events(self, emitted: list[Emitted]) -> None:
        self.events += len(emitted)
        self._bar.update(self._task, completed=self.stats.frames, description=f"{self.label} events: {self.events}")

    def close(self) -> None:
        self._bar.update(self._task, completed=self.stats.frames)
        self._bar.stop()
