"""`gridwatch analyze CLIP --config SITE.yaml --camera ID --out DIR`: the edge pipeline on one clip, offline.

No broker: every event is written to `DIR/incidents.jsonl` (one `IncidentEvent` per line), each started
incident's snapshot to `DIR/snapshots/<incident_id>.jpg`, and the review video to `DIR/annotated.mp4`. This is
how engineers check a camera's zones and thresholds, and how accuracy is measured on real clips.

CLIP is a video file or a stream URL (rtsp://, rtsps://, rtmp://, http(s)://). The clip's first frame happens at
`start_wall` (default: now); pass a fixed time to make two runs' events identical.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rich.table import Table

from gridwatch.calibration.grid import GridLayer
from gridwatch.edge.camera import CameraPipeline, Emitted
from gridwatch.edge.config import SiteConfig
from gridwatch.edge.detectors import DetectorSet, load_detectors
from gridwatch.edge.hard_examples import example_store, hard_example_sink
from gridwatch.edge.loop import LoopEnd, LoopReport, Sink, run_camera
from gridwatch.edge.recording import RecordingSink
from gridwatch.edge.sinks import CallbackSink, JsonlSink, ProgressSink, VideoSink
from gridwatch.edge.sources import SourceError, is_stream_url, open_target, redact_url
from gridwatch.models.base import Detector
from gridwatch.wire.events import IncidentEvent


@dataclass(frozen=True)
class AnalyzeReport:
    source: str
    start_wall: datetime
    loop: LoopReport
    events: list[IncidentEvent]

    @property
    def frames_expected(self) -> int | None:
        return self.loop.frames_expected

    @property
    def frames_decoded(self) -> int:
        return self.loop.frames_decoded

    @property
    def frames_analysed(self) -> int:
        return self.loop.frames_analysed

    @property
    def seconds(self) -> float:
        return self.loop.seconds

    @property
    def analysed_fps(self) -> float:
        return self.loop.analysed_fps

    @property
    def end_reason(self) -> LoopEnd:
        return self.loop.end_reason

    @property
    def incidents(self) -> dict[str, list[IncidentEvent]]:
        out: dict[str, list[IncidentEvent]] = {}
        for e in self.events:
            out.setdefault(e.incident_id, []).append(e)
        return out

    def offset_s(self, when: datetime) -> float:
        """Seconds from the clip's first frame to `when`."""
        return (when - self.start_wall).total_seconds()

    def raise_if_failed(self) -> None:
        """One-line `SourceError` when the source failed (nothing decoded, or far fewer frames than announced)."""
        failure = self.loop.failure
        if self.loop.failed:
            raise SourceError(failure if failure and self.source in failure else f"{self.source}: {failure}")


def load_grid(cfg: SiteConfig) -> GridLayer | None:
    return GridLayer.from_geojson(cfg.grid_geojson) if cfg.grid_geojson else None


def analyze_clip(
    clip: str | Path, cfg: SiteConfig, camera_id: str, out: Path, *, detector: Detector | DetectorSet | None = None,
    progress: bool = True, write_video: bool = True, start_wall: datetime | None = None,
    on_emitted: Callable[[Emitted], None] | None = None, stop: threading.Event | None = None,
    record: Path | None = None,
) -> AnalyzeReport:
    """Run the camera's pipeline on `clip` (a file path or stream URL); outputs go to `out`.

    A source that fails (see `gridwatch.edge.loop.judge_source`) still writes what it produced; the report says so
    and `raise_if_failed` turns it into an error. `detector`: the site's detectors by name, or one detector for
    every analysed frame (default: load the ones the config names). `record`: write what the rules saw, frame
    by frame, as a replay recording (`gridwatch.edge.recording`)."""
    camera = cfg.camera(camera_id)
    start_wall = start_wall or datetime.now(timezone.utc)
    stop = stop or threading.Event()
    detector = detector or load_detectors(cfg)
    source = open_target(str(clip), camera_id, start_wall=start_wall, sample_fps=camera.analysis_fps, stop=stop)
    pipeline = CameraPipeline(cfg.site_id, cfg.gateway_id, camera, detector, grid=load_grid(cfg),
                              jpeg_quality=cfg.evidence.jpeg_quality)
    jsonl = JsonlSink(out)
    sinks: list[Sink] = [jsonl]
    hard = hard_example_sink(cfg.hard_examples, example_store(cfg.hard_examples), cfg.site_id, cfg.gateway_id,
                             pipeline.detectors.infos())
    if hard is not None:
        sinks.append(hard)
    if write_video:
        sinks.append(VideoSink(out / "annotated.mp4", camera.analysis_fps))
    if on_emitted:
        sinks.append(CallbackSink(on_emitted))
    if record is not None:
        sinks.append(RecordingSink(record, camera))
    text = str(clip)
    name = redact_url(text) if is_stream_url(text) else text
    sinks.append(ProgressSink(f"analyse {Path(name).name if name == text else name}", source.stats,
                              source.expected_frames, enabled=progress))
    report = run_camera(source, pipeline, sinks, stop)
    return AnalyzeReport(name, start_wall, report, jsonl.events)


# Below this width the table keeps only what identifies and times an incident; the rest is in incidents.jsonl.
WIDE_TABLE_COLUMNS = 110


def incidents_table(report: AnalyzeReport, width: int) -> Table:
    """The incidents found, one row each; times are offsets into the clip (`+12.4s`) so they match the video.

    Ids are never truncated (no_wrap): they are what a user greps for in incidents.jsonl and snapshots/. On a
    terminal narrower than `WIDE_TABLE_COLUMNS` the zone goes under the id, the type (already in the id) and the
    location are dropped, and the messages are summarised as the last phase and a count."""
    incidents = report.incidents
    wide = width >= WIDE_TABLE_COLUMNS
    table = Table(title=f"{len(incidents)} incident(s)")
    table.add_column("incident" if wide else "incident\nzone", no_wrap=True)
    if wide:
        table.add_column("type", no_wrap=True)
        table.add_column("zone", overflow="fold")
    table.add_column("start", no_wrap=True, justify="right")
    table.add_column("dwell", no_wrap=True, justify="right")
    table.add_column("messages" if wide else "last", overflow="fold", min_width=5)
    if wide:
        table.add_column("location", no_wrap=True)
    for iid, evs in incidents.items():
        last = evs[-1]
        times = [f"+{report.offset_s(last.started_at):.1f}s", f"{last.dwell_s:.1f}s"]
        if wide:
            loc = f"{last.location.lat:.6f},{last.location.lon:.6f}" if last.location else "-"
            table.add_row(iid, last.type, last.zone or "-", *times, " ".join(e.phase for e in evs), loc)
        else:
            table.add_row(f"{iid}\n{last.zone or '-'}", *times, f"{last.phase} ({len(evs)})")
    return table


def summary_line(report: AnalyzeReport, out: Path) -> str:
    expected = f" of {report.frames_expected}" if report.frames_expected else ""
    return (f"{report.frames_decoded}{expected} frames decoded, {report.frames_analysed} analysed in "
            f"{report.seconds:.1f} s ({report.analysed_fps:.1f} analysed frames/s); clip starts at "
            f"{report.start_wall.isoformat()}; output in {out}")
