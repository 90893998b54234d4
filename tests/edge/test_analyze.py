"""`gridwatch analyze` as a user meets it: broken clips are errors, tables fit 80 columns, runs are reproducible."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from rich.console import Console

from gridwatch.app.cli import main
from gridwatch.edge.analyze import AnalyzeReport, analyze_clip, incidents_table
from gridwatch.edge.config import parse_site_config
from gridwatch.models.fake import FakeDetector
from tests.edge.test_worker import config

DEMO_MODEL = Path(__file__).resolve().parents[2] / "models" / "demo" / "gridwatch-demo-yolo11n.onnx"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
CAR = [[(10, 10, 40, 40, "car", 0.9)]]


def noisy_clip(path: Path, n: int = 117) -> Path:
    """An MJPG AVI of `n` random frames (random so that every frame has a real size on disk)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(n):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    return path


def site(tmp: Path, clip: Path) -> Path:
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump({
        "site_id": "s1", "gateway_id": "gw1",
        "detector": {"type": "onnx", "model": str(DEMO_MODEL)},
        "cameras": [{"id": "cam1", "source": {"type": "file", "path": str(clip)}, "analysis_fps": 5}],
    }))
    return path


def analyze(tmp: Path, clip: str, *extra: str) -> int:
    return main(["analyze", clip, "--config", str(site(tmp, Path(clip))), "--camera", "cam1", "--quiet",
                 "--no-video", "--out", str(tmp / "out"), *extra])


def test_truncated_clip_is_an_error_that_says_how_many_frames_decoded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = noisy_clip(tmp_path / "whole.avi").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole[: len(whole) * 3 // 10])  # a download that stopped at 30 %
    assert analyze(tmp_path, str(cut)) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error: " in line]
    assert len(errors) == 1, captured.err
    assert re.search(r"decoded only \d+ of 117 frames", errors[0]), errors[0]
    assert "Traceback" not in captured.err
    assert re.search(r"\d+ of 117 frames decoded", captured.out)  # the summary says it too


def test_whole_clip_reports_every_frame_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = noisy_clip(tmp_path / "whole.avi")
    assert analyze(tmp_path, str(clip)) == 0
    assert "117 of 117 frames decoded" in capsys.readouterr().out


def test_garbage_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(1).bytes(50_000))
    assert analyze(tmp_path, str(junk)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: " in err and "cannot open" in err and "junk.mp4" in err


def test_stream_url_is_kept_whole_and_a_dead_one_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert analyze(tmp_path, "rtsp://viewer:secret@127.0.0.1:1/live") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: cannot open stream rtsp://viewer:***@127.0.0.1:1/live" in err
    assert "does not exist" not in err and "secret" not in err


def test_start_at_fixes_event_times_and_the_table_shows_offsets(tmp_path: Path) -> None:
    cfg = config(tmp_path, noisy_clip(tmp_path / "clip.avi", n=40))

    def run(name: str) -> AnalyzeReport:
        det = FakeDetector.from_boxes(CAR, when_exhausted="repeat_last")
        return analyze_clip(tmp_path / "clip.avi", cfg, "cam1", tmp_path / name, detector=det, progress=False,
                            write_video=False, start_wall=T0)

    first, second = run("a"), run("b")
    times = [(e.phase, e.started_at, e.observed_at, e.ended_at) for e in first.events]
    assert [t[0] for t in times] == ["started", "ended"]
    assert times == [(e.phase, e.started_at, e.observed_at, e.ended_at) for e in second.events]
    offset = first.offset_s(first.events[0].started_at)
    assert 0 <= offset < 1.0  # the car is there from the clip's first frame
    # Ids as long as a real camera's (crystal-dr-0e7b011a-illegal_parking-00001) print whole at 80 columns.
    iid = "crystal-dr-0e7b011a-illegal_parking-00001"
    first = dataclasses.replace(first, events=[e.model_copy(update={"incident_id": iid}) for e in first.events])
    console = Console(width=80, record=True)
    console.print(incidents_table(first, console.width))
    text = console.export_text()
    assert iid in text, text  # whole, never truncated
    assert f"+{offset:.1f}s" in text and "kerb" in text and "ended (2)" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_start_at_is_taken_by_the_cli_as_utc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = noisy_clip(tmp_path / "clip.avi", n=10)
    assert analyze(tmp_path, str(clip), "--start-at", "2026-03-01T08:00:00") == 0
    assert "clip starts at 2026-03-01T08:00:00+00:00" in capsys.readouterr().out


def test_bad_start_at_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        analyze(tmp_path, "x.avi", "--start-at", "yesterday")
    assert exc.value.code == 2


def test_the_annotated_video_draws_scene_change_regions_in_magenta(tmp_path: Path) -> None:
    """`analyze` on a clip where a thing no detector class covers is set down: the review video draws its tracked
    region as a dashed magenta `#id region` box (the stage's raw regions as magenta corners), where the event is."""
    from tests.e2e.videos import last_frame, magenta_pixels
    from tests.edge.scene.test_stage import BG, OBJ, with_patch

    clip = tmp_path / "drop.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (BG.shape[1], BG.shape[0]))
    for i in range(100):
        writer.write(with_patch(BG, OBJ) if i >= 20 else BG)
    writer.release()
    cfg = parse_site_config({
        "site_id": "s1", "gateway_id": "gw1", "detector": {"type": "onnx", "model": "unused.onnx"},
        "cameras": [{"id": "cam1", "analysis_fps": 2, "source": {"type": "file", "path": str(clip)},
                     "incidents": {"exposed_garbage": {"dwell_s": 2.0, "classes": ["unknown_object"]}},
                     "scene_change": {"min_static_s": 2.0}}],
    })
    report = analyze_clip(clip, cfg, "cam1", tmp_path / "out", detector=FakeDetector([]), progress=False,
                          start_wall=T0)
    (started,) = [e for e in report.events if e.phase == "started"]
    assert [o.class_name for o in started.objects] == ["unknown_object"]
    image = last_frame(tmp_path / "out" / "annotated.mp4")
    assert magenta_pixels(image, OBJ) > 40
    far_away = (0, 0, 60, 60)  # the caption's corner is grey, nothing magenta there
    assert magenta_pixels(image, far_away, pad=0) == 0
