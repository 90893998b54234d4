"""Open incidents carried over a gateway restart, so the same car at the same place stays the same case.

When a camera stops, its pipeline's open incidents end with the reason it stopped (`shutdown`, `source_ended`,
`stream_lost`: no evidence that the scene cleared) and are kept here; the worker writes them to a small JSON file
next to the outbox (`state.path` in the site config) when it stops, and also whenever a camera's incidents change
while it runs (`ResumeSink`), so a worker that is killed (SIGKILL, power loss, OOM) continues them too. On the next
start the file is read and removed (the new run rewrites it from its own state, so a crash never resurrects
incidents a later run already settled), and each camera's
pipeline gets its own incidents back as *pending*: found again at the same place within the resume grace, an
incident continues (same id, seq above the last one sent, original start); not found, it ends as `gone`.

Capture timestamps start again at 0 after a restart, so the file holds wall-clock times; the conversion happens
here, at the edge boundary, against a frame's (`ts`, `wall`) pair. The pipelines only ever see capture time.

A missing file is an empty state; an unreadable one is logged, set aside as `<name>.bad` and ignored: a gateway
must start even when its resume state is damaged (the incidents then start afresh, as before this module).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridwatch.edge.config import SiteConfig
from gridwatch.pipelines.types import OpenIncident

if TYPE_CHECKING:  # camera.py imports this module
    from gridwatch.edge.camera import Emitted, FrameResult

log = logging.getLogger(__name__)

STATE_VERSION = 1
Box = tuple[float, float, float, float]


class SavedIncident(BaseModel):
    """One open incident of one camera, in wall-clock time (see `pipelines.types.OpenIncident`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera_id: str
    incident_id: str
    type: str
    seq: int = Field(ge=0, description="Last message number sent for the incident.")
    started_at: datetime
    last_seen_at: datetime
    zone: str | None = None
    confidence: float
    first_box: Box
    box: Box
    anchor: tuple[float, float]
    ground: tuple[float, float] | None = None


class _StateFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = STATE_VERSION
    incidents: list[SavedIncident] = Field(default_factory=list)


def to_wall(record: OpenIncident, camera_id: str, frame_ts: float, frame_wall: datetime) -> SavedIncident:
    """An exported incident in wall-clock time, using a frame of the same run as the reference."""

    def wall(ts: float) -> datetime:
        return frame_wall - timedelta(seconds=frame_ts - ts)

    return SavedIncident(
        camera_id=camera_id, incident_id=record.incident_id, type=record.type, seq=record.seq,
        started_at=wall(record.started_ts), last_seen_at=wall(record.last_ts), zone=record.zone,
        confidence=record.confidence, first_box=record.first_box, box=record.box, anchor=record.anchor,
        ground=record.ground,
    )


def to_capture(saved: SavedIncident, frame_ts: float, frame_wall: datetime) -> OpenIncident:
    """A saved incident in the capture time of the run that `frame` belongs to (may be before its first frame)."""

    def ts(at: datetime) -> float:
        return frame_ts - (frame_wall - at).total_seconds()

    return OpenIncident(
        saved.incident_id, saved.type, saved.seq, ts(saved.started_at), ts(saved.last_seen_at), saved.zone,
        saved.confidence, saved.first_box, saved.box, saved.anchor, saved.ground,
    )


def state_path(cfg: SiteConfig) -> Path:
    """`state.path`, or open-incidents.json next to the outbox."""
    return cfg.state.path or cfg.outbox.path.with_name("open-incidents.json")


class ResumeState:
    """The open incidents per camera between a camera's stop and its next start (thread-safe)."""

    def __init__(self, path: str | Path, incidents: Iterable[SavedIncident] = ()) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()  # camera threads save concurrently; the last rename must be the newest
        self._by_camera: dict[str, list[SavedIncident]] = {}
        for inc in incidents:
            self._by_camera.setdefault(inc.camera_id, []).append(inc)

    @classmethod
    def load(cls, path: str | Path) -> ResumeState:
        """Read the file a previous run wrote, and remove it (it is consumed; see the module docstring)."""
        path = Path(path)
        try:
            state = _StateFile.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValidationError, ValueError) as exc:
            log.warning("ignoring unreadable resume state %s (%s); open incidents start afresh", path, exc)
            os.replace(path, path.with_name(path.name + ".bad"))
            return cls(path)
        path.unlink()
        log.info("resuming %d open incident(s) from %s", len(state.incidents), path)
        return cls(path, state.incidents)

    def take(self, camera_id: str) -> list[SavedIncident]:
        """The camera's saved incidents, handed to its new pipeline (and no longer held here)."""
        with self._lock:
            return self._by_camera.pop(camera_id, [])

    def keep(self, camera_id: str, incidents: Iterable[SavedIncident]) -> None:
        """What a stopped camera pipeline exported; replaces anything held for that camera."""
        with self._lock:
            self._by_camera[camera_id] = list(incidents)

    def all(self) -> list[SavedIncident]:
        with self._lock:
            return [inc for incs in self._by_camera.values() for inc in incs]

    def save(self, *, quiet: bool = False) -> None:
        """Write the held incidents atomically (temp file, fsync, rename); no incidents = no file."""
        with self._save_lock:
            self._save(quiet)

    def _save(self, quiet: bool) -> None:
        incidents = self.all()
        if not incidents:
            self.path.unlink(missing_ok=True)
            return
        data = _StateFile(incidents=incidents).model_dump_json(indent=1).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.log(logging.DEBUG if quiet else logging.INFO, "kept %d open incident(s) for the next start in %s",
                len(incidents), self.path)


class ResumeSink:
    """A camera-loop sink that rewrites the resume file whenever the camera's incidents change (any update).

    Cheap: incidents change every `update_every_s` at most, plus starts and ends. `export` is the camera pipeline's
    own `export`, called on the camera's thread (the only thread that touches that pipeline)."""

    def __init__(self, state: ResumeState, camera_id: str, export: Callable[[], list[SavedIncident]]) -> None:
        self.state, self.camera_id, self.export = state, camera_id, export

    def on_frame(self, result: FrameResult) -> None:
        if result.updates:
            self.state.keep(self.camera_id, self.export())
            self.state.save(quiet=True)

    def on_events(self, emitted: list[Emitted]) -> None:
        """The end-of-run flush: the worker keeps and saves the final state itself."""

    def close(self) -> None:
        """Nothing held."""
