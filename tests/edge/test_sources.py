from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from gridwatch.edge.frames import Frame
from gridwatch.edge.sources import (
    FileSource,
    ImagesSource,
    LatestFrameQueue,
    LiveSource,
    Sampler,
    SourceError,
    is_stream_url,
    open_target,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def write_clip(path: Path, n: int = 20, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (64, 48))
    for i in range(n):
        img = np.full((48, 64, 3), i * 10 % 255, np.uint8)
        writer.write(img)
    writer.release()
    return path


def frame(ts: float, i: int = 0) -> Frame:
    return Frame("c", i, ts, T0, np.zeros((2, 2, 3), np.uint8))


def test_file_source_timestamps_come_from_the_file(tmp_path: Path) -> None:
    src = FileSource(write_clip(tmp_path / "a.mp4", n=20, fps=10.0), "cam", start_wall=T0)
    frames = list(src)
    assert len(frames) == 20
    assert [f.index for f in frames] == list(range(20))
    assert frames[-1].ts == pytest.approx(1.9)
    assert (frames[-1].wall - T0).total_seconds() == pytest.approx(1.9)


def test_file_source_loop_keeps_time_increasing(tmp_path: Path) -> None:
    src = FileSource(write_clip(tmp_path / "a.mp4", n=5), "cam", loop=True)
    ts = [f.ts for _, f in zip(range(12), src, strict=False)]
    assert all(b > a for a, b in itertools.pairwise(ts))


def test_missing_or_undecodable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        FileSource(tmp_path / "nope.mp4", "cam")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot open"):
        FileSource(bad, "cam")


def test_images_source_skips_unreadable_files(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "1.png").write_bytes(b"broken")
    src = ImagesSource(str(tmp_path / "*.png"), "cam", fps=2.0)
    assert [f.ts for f in src] == [0.0, 1.0]
    assert src.stats.read_errors == 1


@pytest.mark.parametrize(
    "fps, stamps, kept",
    [
        (5.0, [i * 0.1 for i in range(10)], 5),        # 10 fps source, 5 fps analysis
        (5.0, [0.0, 0.05, 0.5, 0.55, 0.9], 3),          # irregular (dropped) frames: by time, not count
        (1.0, [0.0, 0.3, 3.0, 3.2, 4.1], 3),            # a gap resets the schedule instead of bursting
    ],
)
def test_sampler_keeps_frames_by_capture_time(fps: float, stamps: list[float], kept: int) -> None:
    s = Sampler(fps)
    assert sum(s.accept(frame(t)) for t in stamps) == kept


def test_latest_frame_queue_never_blocks_and_counts_drops() -> None:
    q = LatestFrameQueue()
    for i in range(5):
        q.put(frame(i, i))
    got = q.get(timeout=0.1)
    assert got is not None and got.index == 4
    assert q.dropped == 4
    assert q.get(timeout=0.01) is None


def test_live_source_reconnects_with_backoff_without_crashing() -> None:
    src = LiveSource("rtsp://127.0.0.1:1/nothing-here", "cam", min_backoff_s=0.05, max_backoff_s=0.1).start()
    deadline = time.monotonic() + 10
    while src.stats.reconnects < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    src.stop()
    assert src.stats.reconnects >= 3
    assert src.stats.frames == 0


def _iterate_in_thread(src: Iterable[Frame]) -> tuple[threading.Thread, list[Frame]]:
    got: list[Frame] = []
    t = threading.Thread(target=lambda: got.extend(src), daemon=True)
    t.start()
    return t, got


def test_realtime_file_source_stops_while_pacing(tmp_path: Path) -> None:
    # Two frames 20 s apart: after the first, the source waits ~20 s to pace the second in real time.
    clip = write_clip(tmp_path / "slow.avi", n=2, fps=0.05)
    stop = threading.Event()
    src = FileSource(clip, "cam", realtime=True, loop=True, stop=stop)
    t, got = _iterate_in_thread(src)
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(got) == 1  # now pacing towards the frame at ts=20 s
    t0 = time.monotonic()
    stop.set()
    t.join(timeout=5)
    assert not t.is_alive() and time.monotonic() - t0 < 1.0
    assert len(got) == 1


def test_live_source_stops_during_reconnect_backoff() -> None:
    stop = threading.Event()
    src = LiveSource("rtsp://127.0.0.1:1/nothing-here", "cam", min_backoff_s=60.0, stop=stop)
    t, _ = _iterate_in_thread(src)
    deadline = time.monotonic() + 10
    while src.stats.reconnects < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert src.stats.reconnects == 1  # now waiting 60 s before the next attempt
    t0 = time.monotonic()
    stop.set()
    t.join(timeout=5)
    assert not t.is_alive() and time.monotonic() - t0 < 1.0


def test_a_stream_url_that_never_opens_fails_with_its_redacted_address() -> None:
    src = open_target("rtsp://admin:hunter2@127.0.0.1:1/live", "cam")
    assert isinstance(src, LiveSource)
    assert list(src) == []
    assert src.failure == "cannot open stream rtsp://admin:***@127.0.0.1:1/live"


@pytest.mark.parametrize("url", ["rtsp://cam.local:554/stream1", "rtsps://h/x", "http://h:8080/v.mjpg",
                                 "HTTPS://h/live.m3u8", "rtmp://h/app"])
def test_stream_urls_are_not_paths(url: str) -> None:
    assert is_stream_url(url)
    src = open_target(url, "cam")
    assert isinstance(src, LiveSource) and src.target == url  # not rtsp:/cam.local (Path collapses //)


def test_file_targets_are_files(tmp_path: Path) -> None:
    assert not is_stream_url(str(tmp_path / "a.mp4"))
    assert isinstance(open_target(str(write_clip(tmp_path / "a.mp4")), "cam"), FileSource)


def test_a_clip_served_over_http_is_read_once_as_a_stream(tmp_path: Path) -> None:
    import functools
    import http.server

    write_clip(tmp_path / "clip.avi", n=30, fps=10.0)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = open_target(f"http://127.0.0.1:{server.server_address[1]}/clip.avi", "cam", start_wall=T0)
        frames = list(src)
    finally:
        server.shutdown()
        server.server_close()
    assert isinstance(src, LiveSource) and src.failure is None
    assert src.stats.frames == 30 and src.stats.reconnects == 0  # read once, not reopened
    assert frames and all(f.wall >= T0 for f in frames)
