"""`gridwatch analyze --record PATH`: the observations the rules saw, frame by frame, as a replay recording.

The file has the format `gridwatch.pipelines.replay` reads: a header with the camera's incident settings (only
what the config sets, so a changed default shows in a replay) and its zones, then one line per analysed frame
with every tracked object (detections and scene-change regions alike, after the tracker and geotagging). Record
a clip once, then replay rule changes against it in milliseconds (`gridwatch replay PATH`)
instead of decoding and detecting again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from gridwatch.edge.camera import Emitted, FrameResult
from gridwatch.edge.config import CameraConfig
from gridwatch.pipelines.replay import observation_row
from gridwatch.pipelines.types import observations_from_detections
from gridwatch.pipelines.zones import Zone


def recording_header(camera: CameraConfig, zones: tuple[Zone, ...]) -> dict[str, Any]:
    """The header line: the enabled incident types with the settings the config gives them, and the zones as
    built for the frame (pixels, or ground metres on a calibrated camera)."""
    incidents = {t.name: cfg.model_dump(mode="json", exclude_unset=True) for t, cfg in camera.incidents.enabled()}
    return {"camera": camera.id, "incidents": incidents,
            "zones": [{"name": z.name, "points": [[round(x, 3), round(y, 3)] for x, y in z.polygon]} for z in zones]}


class RecordingSink:
    """Writes the recording; the header goes out with the first analysed frame (zones are built on it)."""

    def __init__(self, path: Path, camera: CameraConfig) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.camera = path, camera
        self.frames = 0
        self._file: TextIO = path.open("w", encoding="utf-8")

    def on_frame(self, result: FrameResult) -> None:
        if self.frames == 0:
            self._file.write(json.dumps(recording_header(self.camera, result.zones)) + "\n")
        objects = [observation_row(o) for o in observations_from_detections(result.tracks)]
        self._file.write(json.dumps({"ts": round(result.frame.ts, 3), "objects": objects}) + "\n")
        self.frames += 1

    def on_events(self, emitted: list[Emitted]) -> None:
        """Events carry nothing the rules saw."""

    def close(self) -> None:
        self._file.close()
