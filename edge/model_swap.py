"""Swapping the running detector between frames, and deciding whether a new model is fit to run.

- `SwappableDetector` is the `Detector` every camera pipeline holds. `swap()` replaces the model it delegates to
  with one reference assignment: a frame already inside `detect()` finishes on the old model, the next frame runs
  the new one, and no camera stops. `info` answers, on a camera thread, for the model that ran that thread's last
  frame, so an event is stamped with the model that actually produced it.
- `judge()` is the one rule for "the detection rate collapsed": the new model must find at least `min_ratio`
  (default 0.3, `model_update.min_detection_ratio`) times as many detections as the running model *on the same
  frames*. When the running model found nothing there is nothing to compare and the new model is not held back.
- `Probation` keeps comparing after the swap: one live frame in `every` also runs the previous model, and after
  `frames` analysed frames the same `judge()` decides; a collapse, or the new model raising on a frame, swaps the
  previous model back at once (`on_end` is told either way).
- `RecentFrames` keeps the last analysed images of all cameras (bounded) for the comparison before a swap.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import supervision as sv

from gridwatch.edge.camera import Emitted, FrameResult
from gridwatch.models.base import Detector, ModelInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    previous: int = 0
    candidate: int = 0
    frames: int = 0


def judge(previous: int, candidate: int, frames: int, min_ratio: float) -> Verdict:
    """Whether a model that found `candidate` detections is fit to replace one that found `previous` on the same
    `frames` frames."""
    if frames == 0:
        return Verdict(True, "no analysed frames to compare on yet", previous, candidate, frames)
    if previous == 0:
        return Verdict(True, f"the running model found nothing on {frames} frames: nothing to compare",
                       previous, candidate, frames)
    ratio = candidate / previous
    text = (f"{candidate} detections against the previous model's {previous} on the same {frames} frames "
            f"({ratio:.0%}; minimum {min_ratio:.0%})")
    if ratio < min_ratio:
        return Verdict(False, f"detection rate collapsed: {text}", previous, candidate, frames)
    return Verdict(True, text, previous, candidate, frames)


def count_on(detector: Detector, images: list[np.ndarray]) -> int:
    return sum(len(detector.detect(image)) for image in images)


class RecentFrames:
    """The last `size` kept images over all cameras (thread-safe); `sink()` gives one camera's feeder, which keeps
    one analysed frame in `every` so the comparison spans seconds of the scene rather than a few consecutive frames.
    Memory: `size` decoded frames (about 6 MB each at 1080p), referenced rather than copied."""

    def __init__(self, size: int, every: int = 1) -> None:
        self._images: deque[np.ndarray] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.every = every

    def add(self, image: np.ndarray) -> None:
        with self._lock:
            self._images.append(image)

    def snapshot(self) -> list[np.ndarray]:
        with self._lock:
            return list(self._images)

    def sink(self) -> RecentFramesSink:
        return RecentFramesSink(self)


@dataclass
class RecentFramesSink:
    frames: RecentFrames
    seen: int = 0

    def on_frame(self, result: FrameResult) -> None:
        if self.seen % self.frames.every == 0:
            self.frames.add(result.frame.image)
        self.seen += 1

    def on_events(self, emitted: list[Emitted]) -> None:
        """Not needed."""

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class Probation:
    """Shadow-runs `previous` on one frame in `every` until `frames` frames ran on `candidate`, then judges."""

    candidate: Detector
    previous: Detector
    frames: int
    every: int
    min_ratio: float
    on_end: Callable[[Verdict], None]
    seen: int = 0
    sampled: int = 0
    previous_count: int = 0
    candidate_count: int = 0
    done: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, image: np.ndarray, found: int) -> Verdict | None:
        """Count one frame the candidate ran on (`found` detections); the verdict once probation is over."""
        with self._lock:
            if self.done:
                return None
            self.seen += 1
            sample = (self.seen - 1) % self.every == 0
        if sample:
            shadow = len(self.previous.detect(image))
            with self._lock:
                self.sampled += 1
                self.previous_count += shadow
                self.candidate_count += found
        with self._lock:
            if self.done or self.seen < self.frames:
                return None
            self.done = True
            return judge(self.previous_count, self.candidate_count, self.sampled, self.min_ratio)

    def fail(self, reason: str) -> Verdict | None:
        with self._lock:
            if self.done:
                return None
            self.done = True
        return Verdict(False, reason, self.previous_count, self.candidate_count, self.sampled)


class SwappableDetector:
    """A `Detector` whose model can be replaced between frames (see the module docstring)."""

    def __init__(self, detector: Detector) -> None:
        self._active = detector
        self._probation: Probation | None = None
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def current(self) -> Detector:
        return self._active

    @property
    def info(self) -> ModelInfo:
        info: ModelInfo | None = getattr(self._local, "info", None)
        return info if info is not None else self._active.info

    @property
    def on_probation(self) -> bool:
        return self._probation is not None

    def swap(self, detector: Detector, probation: Probation | None = None) -> Detector:
        """Make `detector` the one the next frame runs on; return the previous one."""
        with self._lock:
            previous, self._active, self._probation = self._active, detector, probation
        log.info("detector swapped: %s %s -> %s %s", previous.info.name, previous.info.version,
                 detector.info.name, detector.info.version)
        return previous

    def detect(self, image: np.ndarray) -> sv.Detections:
        detector, probation = self._active, self._probation
        self._local.info = detector.info
        try:
            found = detector.detect(image)
        except Exception as exc:
            if probation is None or detector is not probation.candidate:
                raise
            log.exception("the new model failed on a frame; rolling back")
            self._end(probation, probation.fail(f"the new model failed on a frame: {type(exc).__name__}: {exc}"))
            return self.detect(image)
        if probation is not None and detector is probation.candidate:
            self._end(probation, probation.observe(image, len(found)))
        return found

    def _end(self, probation: Probation, verdict: Verdict | None) -> None:
        if verdict is None:
            return
        with self._lock:
            if self._probation is not probation:
                return
            self._probation = None
            if not verdict.ok and self._active is probation.candidate:
                self._active = probation.previous
        if not verdict.ok:
            log.warning("rolled back to %s %s: %s", probation.previous.info.name, probation.previous.info.version,
                        verdict.reason)
        probation.on_end(verdict)
