"""The one camera loop: a source's frames through a `CameraPipeline`, each analysed frame handed to sinks.

    source --frames--> CameraPipeline.process --FrameResult--> sinks (video, outbox, JSONL, progress)
                                        ...end: pipeline.flush --events--> sinks, sinks closed

The worker (one loop per camera thread), `gridwatch analyze` and the demo all run this function; only their sinks
differ. The pipeline stays free of I/O, and sinks see only `FrameResult`s and emitted events, never the pipeline.

The loop ends when the source ends, when `stop` is set (checked between frames; sources also wait on it while
they block), or when the source fails. `LoopReport.end_reason` says which, and the report counts the frames the
source was expected to give and the frames it decoded, so a truncated clip is an error, not a short success.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from gridwatch.edge.camera import CameraPipeline, Emitted, FrameResult
from gridwatch.edge.frames import Frame
from gridwatch.edge.sources import LiveSource, SourceStats
from gridwatch.pipelines.types import EndReason

log = logging.getLogger(__name__)

# A file that decodes fewer than this share of the frames its container announces is reported as failed: a
# truncated or corrupt file, not a clip that ended. 90 % leaves room for containers whose frame count is an estimate
# (a few frames off) while catching a cut-off download (37 of 117 frames).
MIN_DECODED_SHARE = 0.9

LoopEnd = Literal["source_ended", "shutdown", "source_failed", "error"]
"""Why a loop ended: the source ran out (`source_ended`), a stop was requested (`shutdown`), the source could not be
read or gave far fewer frames than announced (`source_failed`), or a sink/pipeline raised (`error`)."""


def incident_end_reason(end: LoopEnd, live: bool) -> EndReason:
    """What the open incidents' `ended` events say about a loop that ended for `end`.

    None of these is `gone`: the camera stopped watching, it did not see the problem cleared. A live stream that
    ends, fails or whose loop raised has lost its stream; a file that ran out has ended."""
    if end == "shutdown":
        return "shutdown"
    if end == "source_ended" and not live:
        return "source_ended"
    return "stream_lost"


class FrameSource(Protocol):
    """What the loop needs from a source (`FileSource`, `ImagesSource`, `LiveSource` all fit)."""

    @property
    def stats(self) -> SourceStats: ...

    @property
    def expected_frames(self) -> int | None:
        """Frames the source announced (a file's container), None when unknown or endless."""
        ...

    @property
    def failure(self) -> str | None:
        """Why the source gave up, if it did (a stream that never opened)."""
        ...

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """Receives what the loop produces. `on_frame` gets every analysed frame (its `emitted` events included);
    `on_events` gets events produced outside a frame (the end-of-run flush); `close` is called once, at the end."""

    def on_frame(self, result: FrameResult) -> None: ...

    def on_events(self, emitted: list[Emitted]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class LoopReport:
    camera_id: str
    frames_expected: int | None
    frames_decoded: int
    frames_analysed: int
    events: int
    seconds: float
    end_reason: LoopEnd
    failure: str | None = None

    @property
    def analysed_fps(self) -> float:
        return self.frames_analysed / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> bool:
        return self.end_reason == "source_failed"


def judge_source(stats: SourceStats, expected: int | None, failure: str | None) -> str | None:
    """Why a source that ran out counts as failed, or None when it simply ended."""
    if failure:
        return failure
    if stats.frames == 0:
        return f"no frame could be decoded (the source announced {expected})" if expected else \
            "no frame could be decoded"
    if expected and stats.frames < MIN_DECODED_SHARE * expected:
        return (f"decoded only {stats.frames} of {expected} frames (< {MIN_DECODED_SHARE:.0%}): "
                "truncated or corrupt file?")
    return None


def run_camera(
    source: FrameSource, pipeline: CameraPipeline, sinks: Sequence[Sink], stop: threading.Event | None = None,
) -> LoopReport:
    """Drive `pipeline` with `source` until it ends, fails or `stop` is set; every analysed frame goes to `sinks`.

    The open incidents are ended (`pipeline.flush`) and the sinks closed however the loop ends; an exception from
    the pipeline or a sink is re-raised after that (the worker counts it and restarts the camera)."""
    stop = stop or threading.Event()
    t0 = time.perf_counter()
    analysed = events = 0
    reason: LoopEnd = "error"
    frames = iter(source)
    try:
        for frame in frames:
            if stop.is_set():
                break
            result = pipeline.process(frame)
            if result is None:
                continue
            analysed += 1
            events += len(result.emitted)
            for sink in sinks:
                sink.on_frame(result)
        reason = "shutdown" if stop.is_set() else "source_ended"
    finally:
        failure = None
        if reason == "source_ended":
            failure = judge_source(source.stats, source.expected_frames, source.failure)
            if failure:
                reason = "source_failed"
        try:
            if isinstance(frames, Generator):
                frames.close()  # runs the source's own clean-up (a capture's release) now, not at garbage collection
            source.close()
            emitted = pipeline.flush(incident_end_reason(reason, live=isinstance(source, LiveSource)))
            events += len(emitted)
            if emitted:
                for sink in sinks:
                    sink.on_events(emitted)
        finally:
            for sink in sinks:
                try:
                    sink.close()
                except Exception:
                    log.exception("camera %s: closing sink %s failed", pipeline.camera.id, type(sink).__name__)
    report = LoopReport(pipeline.camera.id, source.expected_frames, source.stats.frames, analysed, events,
                        time.perf_counter() - t0, reason, failure)
    if failure:
        log.warning("camera %s: source failed: %s", report.camera_id, failure)
    return report
