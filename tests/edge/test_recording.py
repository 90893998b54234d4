"""`gridwatch analyze --record` + `gridwatch replay`: what the rules saw on a real decoded clip, replayed without
the video, gives the same incidents as the live run."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml

from gridwatch.app.cli import main
from gridwatch.edge.analyze import analyze_clip
from gridwatch.edge.config import SiteConfig, parse_site_config
from gridwatch.models.fake import FakeDetector
from gridwatch.pipelines.replay import replay_text
from tests.edge.scene.test_stage import BG, OBJ, with_patch

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def drop_clip(path: Path) -> Path:
    """20 empty frames, then a thing no detector class covers lies there (the scene-change stage finds it)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (BG.shape[1], BG.shape[0]))
    for i in range(100):
        writer.write(with_patch(BG, OBJ) if i >= 20 else BG)
    writer.release()
    return path


DEMO_MODEL = Path(__file__).resolve().parents[2] / "models" / "demo" / "gridwatch-demo-yolo11n.onnx"


def site_dict(clip: Path) -> dict[str, Any]:
    return {
        "site_id": "s1", "gateway_id": "gw1", "detector": {"type": "onnx", "model": str(DEMO_MODEL)},
        "cameras": [{"id": "cam1", "analysis_fps": 2, "source": {"type": "file", "path": str(clip)},
                     "zones": [{"name": "walk", "points": [[0, 0], [400, 0], [400, 400], [0, 400]]}],
                     "incidents": {"exposed_garbage": {"dwell_s": 2.0, "zones": ["walk"]}},
                     "scene_change": {"min_static_s": 2.0}}],
    }


def site(clip: Path) -> SiteConfig:
    return parse_site_config(site_dict(clip))


def test_a_recording_replays_to_the_live_runs_incidents(tmp_path: Path) -> None:
    clip = drop_clip(tmp_path / "drop.avi")
    record = tmp_path / "rec" / "observations.jsonl"
    report = analyze_clip(clip, site(clip), "cam1", tmp_path / "out", detector=FakeDetector([]), progress=False,
                          write_video=False, start_wall=T0, record=record)
    live = [(e.type, e.phase, round(report.offset_s(e.started_at), 1)) for e in report.events]
    assert [x[:2] for x in live] == [("exposed_garbage", "started"), ("exposed_garbage", "ended")]

    lines = record.read_text().splitlines()
    header = json.loads(lines[0])
    # only what the config sets (a changed default shows in a replay), and the zones as built
    assert header["incidents"] == {"exposed_garbage": {"dwell_s": 2.0, "zones": ["walk"]}}
    assert header["zones"][0]["name"] == "walk" and len(header["zones"][0]["points"]) == 4
    frames = [json.loads(line) for line in lines[1:]]
    assert len(frames) == 20  # 10 s at 2 analysis fps
    regions = [o for f in frames for o in f["objects"] if o["class_name"] == "unknown_object"]
    assert regions and all("age_s" in o and "elongation" in o for o in regions)

    replayed = [(r["type"], r["phase"], r["started"]) for r in replay_text(lines)]
    assert replayed == live


def test_the_replay_command_prints_updates_and_names_a_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = drop_clip(tmp_path / "drop.avi")
    record = tmp_path / "observations.jsonl"
    yaml_path = tmp_path / "site.yaml"
    yaml_path.write_text(yaml.safe_dump(site_dict(clip)))  # the real demo model runs: the CLI loads it
    assert main(["analyze", str(clip), "--config", str(yaml_path), "--camera", "cam1", "--quiet", "--no-video",
                 "--out", str(tmp_path / "out"), "--record", str(record)]) == 0
    capsys.readouterr()
    assert main(["replay", str(record)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert ("exposed_garbage", "started") in [(r["type"], r["phase"]) for r in rows]
    assert rows == replay_text(record.read_text().splitlines())

    broken = tmp_path / "broken.jsonl"
    broken.write_text(record.read_text().splitlines()[0] + "\n" + '{"ts": 0.5, "objects": [{"box": [1, 2]}]}\n')
    assert main(["replay", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "broken.jsonl" in err and "line 2" in err
