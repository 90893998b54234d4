"""The one camera loop with fakes: what sinks receive, why the loop ended, and frame accounting."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from gridwatch.edge.camera import CameraPipeline, Emitted, FrameResult
from gridwatch.edge.config import SiteConfig
from gridwatch.edge.frames import Frame
from gridwatch.edge.loop import MIN_DECODED_SHARE, run_camera
from gridwatch.edge.sources import FileSource, SourceStats
from gridwatch.models.fake import FakeDetector
from tests.edge.test_sources import write_clip
from tests.edge.test_worker import config

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
CAR = [[(10, 10, 40, 40, "car", 0.9)]]


@dataclass
class RecordingSink:
    frames: list[FrameResult] = field(default_factory=list)
    flushed: list[Emitted] = field(default_factory=list)
    closed: int = 0
    stop_after: int | None = None
    stop: threading.Event | None = None
    raise_on: int | None = None

    def on_frame(self, result: FrameResult) -> None:
        self.frames.append(result)
        if self.raise_on is not None and len(self.frames) == self.raise_on:
            raise RuntimeError("disk full")
        if self.stop is not None and len(self.frames) == self.stop_after:
            self.stop.set()

    def on_events(self, emitted: list[Emitted]) -> None:
        self.flushed.extend(emitted)

    def close(self) -> None:
        self.closed += 1


@dataclass
class ScriptedSource:
    """Yields `n` blank frames at 10 fps while announcing `expected` (a truncated file does exactly this)."""

    n: int
    expected: int | None
    failure: str | None = None
    stats: SourceStats = field(default_factory=SourceStats)
    closed: bool = False

    @property
    def expected_frames(self) -> int | None:
        return self.expected

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n):
            self.stats.frames += 1
            yield Frame("cam1", i, i / 10, T0, np.zeros((48, 64, 3), np.uint8))

    def close(self) -> None:
        self.closed = True


def pipeline(cfg: SiteConfig, detector: FakeDetector | None = None) -> CameraPipeline:
    det = detector or FakeDetector.from_boxes(CAR, when_exhausted="repeat_last")
    return CameraPipeline("s1", "gw1", cfg.cameras[0], det, "run1")


@pytest.fixture
def cfg(tmp_path: Path) -> SiteConfig:
    return config(tmp_path, write_clip(tmp_path / "clip.mp4", n=40, fps=10.0))


def test_sinks_get_every_analysed_frame_with_what_they_draw_and_the_flush(cfg: SiteConfig, tmp_path: Path) -> None:
    source = FileSource(tmp_path / "clip.mp4", "cam1", start_wall=T0, sample_fps=10)
    sink = RecordingSink()
    report = run_camera(source, pipeline(cfg), [sink])
    assert report.end_reason == "source_ended" and report.failure is None
    assert (report.frames_expected, report.frames_decoded, report.frames_analysed) == (40, 40, 40)
    assert len(sink.frames) == 40 and sink.closed == 1
    last = sink.frames[-1]
    assert [z.name for z in last.zones] == ["kerb"]
    assert last.tracks.tracker_id is not None and len(last.tracks) == 1
    assert len(last.detections) == 1
    assert [u.type for u in last.open_incidents] == ["illegal_parking"]  # parked after dwell_s=1.0
    started = [e for r in sink.frames for e in r.emitted if e.event.phase == "started"]
    assert len(started) == 1 and started[0].snapshot is not None
    assert [e.event.phase for e in sink.flushed] == ["ended"]  # the open incident ended at the end of the run
    assert report.events == sum(len(r.emitted) for r in sink.frames) + 1


def test_stop_ends_the_loop_between_frames_as_shutdown(cfg: SiteConfig) -> None:
    stop = threading.Event()
    sink = RecordingSink(stop=stop, stop_after=3)
    source = ScriptedSource(n=40, expected=40)
    report = run_camera(source, pipeline(cfg), [sink], stop)
    assert report.end_reason == "shutdown"
    assert report.frames_analysed == 3 and len(sink.frames) == 3
    assert report.failure is None  # stopping early is not a failed source
    assert source.closed and sink.closed == 1


@pytest.mark.parametrize(
    "n, expected, reason, message",
    [
        (37, 117, "source_failed", "decoded only 37 of 117 frames"),
        (0, 117, "source_failed", "no frame could be decoded"),
        (0, None, "source_failed", "no frame could be decoded"),
        (int(117 * MIN_DECODED_SHARE) + 1, 117, "source_ended", None),  # container counts are estimates
        (5, None, "source_ended", None),  # a stream or looping file announces nothing
    ],
)
def test_a_source_that_gives_far_fewer_frames_than_announced_failed(
    cfg: SiteConfig, n: int, expected: int | None, reason: str, message: str | None
) -> None:
    report = run_camera(ScriptedSource(n=n, expected=expected), pipeline(cfg), [RecordingSink()])
    assert report.end_reason == reason
    assert (report.frames_decoded, report.frames_expected) == (n, expected)
    if message is None:
        assert report.failure is None
    else:
        assert report.failure is not None and message in report.failure


def test_a_source_that_gave_up_is_failed_with_its_reason(cfg: SiteConfig) -> None:
    source = ScriptedSource(n=0, expected=None, failure="cannot open stream rtsp://cam/1")
    report = run_camera(source, pipeline(cfg), [])
    assert report.end_reason == "source_failed" and report.failure == "cannot open stream rtsp://cam/1"


def test_a_failing_sink_still_ends_open_incidents_and_closes_every_sink(cfg: SiteConfig) -> None:
    failing, other = RecordingSink(raise_on=20), RecordingSink()
    with pytest.raises(RuntimeError, match="disk full"):
        run_camera(ScriptedSource(n=40, expected=40), pipeline(cfg), [failing, other])
    assert [e.event.phase for e in other.flushed] == ["ended"]
    assert failing.closed == 1 and other.closed == 1


@pytest.mark.parametrize(("end", "live", "reason"), [
    ("shutdown", False, "shutdown"), ("shutdown", True, "shutdown"),
    ("source_ended", False, "source_ended"), ("source_ended", True, "stream_lost"),
    ("source_failed", False, "stream_lost"), ("error", True, "stream_lost"),
])
def test_how_a_loop_ends_becomes_the_incidents_end_reason_never_gone(end: str, live: bool, reason: str) -> None:
    from gridwatch.edge.loop import incident_end_reason

    assert incident_end_reason(end, live) == reason  # type: ignore[arg-type]
