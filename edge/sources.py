"""Frame sources: video files, RTSP streams, USB cameras and folders of stills, all yielding `Frame`s.

Every frame carries its capture time: a file's presentation timestamp (so an offline run measures dwell exactly
as the live camera would have), or the monotonic clock at grab time for live sources.

Live sources run a capture thread that never blocks: it keeps only the newest frame (`LatestFrameQueue`) and
counts what it had to drop. A stream that fails is reopened with exponential backoff (forever for a gateway's
camera, a bounded number of times for `analyze`); the failures and reconnects are counted for the health topic.

Every source takes an optional `stop` event and ends promptly once it is set: between frames, while pacing a file
in real time, and during reconnect backoff (they wait on the event, never `time.sleep`). Every source also says how
many frames it expected (`expected_frames`, None when unknown or endless) and why it failed (`failure`), so the
camera loop can tell a finished clip from a truncated one.
"""

from __future__ import annotations

import glob as globlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np

from gridwatch.edge.config import (
    FileSourceConfig,
    ImagesSourceConfig,
    SourceConfig,
    StreamSourceConfig,
    UsbSourceConfig,
)
from gridwatch.edge.frames import Frame
from gridwatch.edge.secrets import expand
from gridwatch.errors import GridwatchError
from gridwatch.wire.mqtt import redact_url

log = logging.getLogger(__name__)


class SourceError(GridwatchError, RuntimeError):
    """A source cannot be opened at all (missing file, unsupported codec), or failed while being read."""


STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")


def is_stream_url(target: str) -> bool:
    """True for network stream addresses, which must never go through `Path` (it collapses `//`)."""
    return target.lower().startswith(STREAM_SCHEMES)


@dataclass
class SourceStats:
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    read_errors: int = 0


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class FileSource:
    """Decode a video file. `ts` = presentation time in seconds; `wall` = `start_wall` + ts."""

    def __init__(
        self, path: str | Path, camera_id: str, *, start_wall: datetime | None = None, loop: bool = False,
        realtime: bool = False, sample_fps: float | None = None, stop: threading.Event | None = None,
    ) -> None:
        """`sample_fps`: yield only the frames a `Sampler(sample_fps)` keeps; the others are grabbed but never
        decoded to pixels, which is most of the cost of reading a 15-30 fps file analysed at 5 fps."""
        self.path = Path(path)
        self.camera_id = camera_id
        self.start_wall = start_wall or _utc_now()
        self.loop = loop
        self.realtime = realtime
        self.sample_fps = sample_fps
        self.stop_event = stop or threading.Event()
        self.stats = SourceStats()
        if not self.path.exists():
            raise SourceError(f"video file {self.path} does not exist")
        cap = cv2.VideoCapture(str(self.path))
        ok = cap.isOpened()
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or 25.0
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        cap.release()
        if not ok:
            raise SourceError(f"OpenCV cannot open {self.path} "
                              "(truncated, corrupt, or an unsupported container or codec?)")

    @property
    def expected_frames(self) -> int | None:
        """Frames the container says it holds (one pass); None for a looping file or when it does not say."""
        return None if self.loop or self.frame_count <= 0 else self.frame_count

    @property
    def failure(self) -> str | None:
        return None

    def close(self) -> None:
        """Nothing to release between reads: each pass opens and closes its own capture."""

    def __iter__(self) -> Iterator[Frame]:
        offset, index = 0.0, 0
        t0 = time.monotonic()
        sampler = Sampler(self.sample_fps) if self.sample_fps else None
        stop = self.stop_event
        while not stop.is_set():
            last_ts = offset
            for ts, image in self._decode(offset, sampler):
                if stop.is_set():
                    return
                self.stats.frames += 1
                index += 1
                last_ts = ts
                if image is None:
                    continue
                if self.realtime:
                    delay = ts - (time.monotonic() - t0)
                    if delay > 0 and stop.wait(delay):
                        return
                yield Frame(self.camera_id, index - 1, ts, self.start_wall + timedelta(seconds=ts), image)
            if not self.loop or index == 0:
                return
            offset = last_ts + 1 / self.fps

    def _decode(self, offset: float, sampler: Sampler | None) -> Iterator[tuple[float, np.ndarray | None]]:
        """(timestamp, image) per frame in the file; image None for frames the sampler skips."""
        cap = cv2.VideoCapture(str(self.path))
        try:
            i = 0
            while cap.grab():
                ts = offset + i / self.fps
                i += 1
                if sampler is not None and not sampler.accept_ts(ts):
                    yield ts, None
                    continue
                ok, image = cap.retrieve()
                if not ok:
                    self.stats.read_errors += 1
                    yield ts, None
                    continue
                yield ts, image
        finally:
            cap.release()


class ImagesSource:
    """A folder of stills (time-lapse cameras, labelled test sets) at a nominal capture rate."""

    def __init__(self, pattern: str, camera_id: str, fps: float = 1.0, start_wall: datetime | None = None,
                 stop: threading.Event | None = None) -> None:
        self.paths = sorted(globlib.glob(pattern))
        if not self.paths:
            raise SourceError(f"no images match {pattern!r}")
        self.camera_id, self.fps = camera_id, fps
        self.start_wall = start_wall or _utc_now()
        self.stop_event = stop or threading.Event()
        self.stats = SourceStats()

    @property
    def expected_frames(self) -> int | None:
        return len(self.paths)

    @property
    def failure(self) -> str | None:
        return None

    def close(self) -> None:
        """Nothing held open."""

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.paths):
            if self.stop_event.is_set():
                return
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                self.stats.read_errors += 1
                log.warning("skipping unreadable image %s", path)
                continue
            ts = i / self.fps
            self.stats.frames += 1
            yield Frame(self.camera_id, i, ts, self.start_wall + timedelta(seconds=ts), image)


@dataclass
class LatestFrameQueue:
    """A one-slot mailbox: `put` never blocks and replaces an unread frame (counted as dropped)."""

    _frame: Frame | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    dropped: int = 0
    closed: bool = False

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Frame | None:
        with self._cond:
            if self._frame is None and not self.closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


# FFmpeg's own open/read timeouts default to 30 s: a stalled RTSP read would hold a stopping camera that long.
STREAM_TIMEOUT_MS = 5000


def _open_capture(target: str | int) -> cv2.VideoCapture:
    if isinstance(target, str):
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(target)


class LiveSource:
    """RTSP or USB capture on its own thread, reconnecting with exponential backoff, newest frame wins.

    `max_reopens`: how many times a stream that cannot be opened (or gives no frame) is retried before the source
    gives up (None = forever, what a gateway camera wants, and a stream that ends is then reopened too). With a bound
    (`analyze` on a URL) a wrong address is an error, not a hang, and a stream that gave frames ends when it ends."""

    def __init__(self, target: str | int, camera_id: str, *, min_backoff_s: float = 1.0,
                 max_backoff_s: float = 30.0, max_reopens: int | None = None, start_wall: datetime | None = None,
                 stop: threading.Event | None = None) -> None:
        self.target, self.camera_id = target, camera_id
        self.min_backoff_s, self.max_backoff_s = min_backoff_s, max_backoff_s
        self.max_reopens = max_reopens
        self.start_wall = start_wall
        self.stats = SourceStats()
        self.queue = LatestFrameQueue()
        self.stop_event = stop or threading.Event()
        self._stop = threading.Event()
        self._failure: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"capture-{camera_id}", daemon=True)

    @property
    def expected_frames(self) -> int | None:
        return None

    @property
    def failure(self) -> str | None:
        return self._failure

    @property
    def label(self) -> str:
        return redact_url(self.target) if isinstance(self.target, str) else f"USB camera {self.target}"

    def start(self) -> LiveSource:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the capture thread to end; waits briefly (a blocked read ends at its timeout, the thread is a daemon)."""
        self._stop.set()
        self.queue.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)

    close = stop

    def __iter__(self) -> Iterator[Frame]:
        if not self._thread.is_alive() and not self._stop.is_set():
            self.start()
        try:
            while not self._stop.is_set() and not self.stop_event.is_set():
                frame = self.queue.get(timeout=0.2)
                if frame is not None:
                    yield frame
                elif self.queue.closed:
                    return
        finally:
            self.stop()

    def _wait(self, seconds: float) -> bool:
        """Sleep that ends early on either stop; True when stopping."""
        deadline = time.monotonic() + seconds
        while not self._stopping():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._stop.wait(min(left, 0.2))
        return True

    def _stopping(self) -> bool:
        return self._stop.is_set() or self.stop_event.is_set()

    def _run(self) -> None:
        backoff, index, reopens = self.min_backoff_s, 0, 0
        mono0, wall0 = time.monotonic(), self.start_wall or _utc_now()
        while not self._stopping():
            cap = _open_capture(self.target)
            if not cap.isOpened():
                cap.release()
                self.stats.reconnects += 1
                reopens += 1
                if self.max_reopens is not None and reopens > self.max_reopens:
                    self._failure = f"cannot open stream {self.label}"
                    break
                log.warning("camera %s: cannot open stream, retrying in %.0f s", self.camera_id, backoff)
                if self._wait(backoff):
                    break
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            backoff = self.min_backoff_s
            while not self._stopping():
                ok, image = cap.read()
                if not ok:
                    self.stats.read_errors += 1
                    break
                ts = time.monotonic() - mono0
                self.stats.frames += 1
                self.queue.put(Frame(self.camera_id, index, ts, wall0 + timedelta(seconds=ts), image))
                self.stats.dropped = self.queue.dropped
                index += 1
            cap.release()
            if self._stopping():
                break
            if self.max_reopens is not None and index > 0:
                break  # a bounded source that gave frames has simply ended (a clip served over HTTP)
            reopens += 1
            if self.max_reopens is not None and reopens > self.max_reopens:
                self._failure = f"stream {self.label} gave no frame"
                break
            self.stats.reconnects += 1
        self.queue.close()


Source = FileSource | ImagesSource | LiveSource


def open_source(
    cfg: SourceConfig, camera_id: str, start_wall: datetime | None = None, sample_fps: float | None = None,
    stop: threading.Event | None = None,
) -> Source:
    if isinstance(cfg, FileSourceConfig):
        return FileSource(cfg.path, camera_id, start_wall=start_wall, loop=cfg.loop, realtime=cfg.realtime,
                          sample_fps=sample_fps, stop=stop)
    if isinstance(cfg, ImagesSourceConfig):
        return ImagesSource(cfg.glob, camera_id, cfg.fps, start_wall, stop=stop)
    if isinstance(cfg, StreamSourceConfig):
        url = expand(cfg.url, f"camera {camera_id}: source.url")  # ${NAME} resolved here only, never stored
        return LiveSource(url, camera_id, min_backoff_s=cfg.reconnect_min_s, max_backoff_s=cfg.reconnect_max_s,
                          stop=stop)
    if isinstance(cfg, UsbSourceConfig):
        return LiveSource(cfg.device, camera_id, stop=stop)
    raise SourceError(f"unsupported source type {cfg!r}")


def open_target(
    target: str, camera_id: str, *, start_wall: datetime | None = None, sample_fps: float | None = None,
    stop: threading.Event | None = None,
) -> Source:
    """A source for a command-line argument: a stream URL (rtsp://, rtsps://, rtmp://, http(s)://) or a video file.

    A URL is read once: when it cannot be opened, or ends, the source ends (reopened up to twice first)."""
    if is_stream_url(target):
        return LiveSource(target, camera_id, max_reopens=2, start_wall=start_wall, stop=stop)
    return FileSource(target, camera_id, start_wall=start_wall, sample_fps=sample_fps, stop=stop)


@dataclass
class Sampler:
    """Keep frames at most `fps` per second of capture time (not every n-th frame: sources drop frames)."""

    fps: float
    _next_ts: float | None = None

    def accept(self, frame: Frame) -> bool:
        return self.accept_ts(frame.ts)

    def accept_ts(self, ts: float) -> bool:
        if self._next_ts is not None and ts + 1e-6 < self._next_ts:
            return False
        step = 1.0 / self.fps
        self._next_ts = (self._next_ts + step) if self._next_ts is not None else ts + step
        if self._next_ts <= ts:
            self._next_ts = ts + step
        return True
