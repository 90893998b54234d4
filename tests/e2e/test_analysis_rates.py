"""The demo scenario gives the same incidents at every analysis rate a camera may be configured with.

Slow incidents (parking, litter, vendors, wires) are meant to be watched at 1-2 analysed frames per second. With
ByteTrack's lost-track buffer counted in the wrong frames, a lost track lived 0.2 s at 2 fps (less than the gap
between two analysed frames), every object was a new track on every frame, and nothing was ever reported.

Real chain (OpenCV-decoded synth clip -> tracker -> rules -> geotag) with the scenario's own labels as the
detector, so only the analysis rate varies. The demo's unlabelled bulky waste (the fridge only the scene-change stage
can find) is left out: how soon a region is reported depends on the stage's `min_static_s`, not on the tracker this
test is about (`test_demo_scenario_truth.py` checks that incident); the other actors render exactly as in the demo.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from gridwatch.app.demo import SCENARIO, site_config
from gridwatch.edge.analyze import analyze_clip
from gridwatch.edge.sources import Sampler
from gridwatch.synth.generate import generate
from gridwatch.synth.scenario import load_scenario
from tests.e2e.label_detector import LabelDetector

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)
MARGIN_S = 0.25
"""Start-time slack on top of one frame gap (the truth's own rounding and the stillness window's edge). Zone
entry is debounced over frames (`inertia`) but stamped at the first frame of the run, so it adds nothing."""


class SampledLabelDetector(LabelDetector):
    """The perfect detector for a clip analysed at `sample_fps`: labels of exactly the frames the source keeps."""

    def __init__(self, labels_dir: Path, clip_fps: float, sample_fps: float) -> None:
        super().__init__(labels_dir)
        sampler = Sampler(sample_fps)  # the same sampler FileSource uses
        self.labels = [p for i, p in enumerate(self.labels) if sampler.accept_ts(i / clip_fps)]


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-clip")
    scenario = load_scenario(SCENARIO)
    generate(scenario.model_copy(update={"actors": [a for a in scenario.actors if a.kind != "bulky"]}), out)
    return out


@pytest.mark.parametrize("fps", [1.0, 2.0, 3.0, 5.0, 10.0])
def test_the_demo_incidents_are_found_at_every_analysis_rate(demo_clip: Path, tmp_path: Path, fps: float) -> None:
    truth: dict[str, Any] = json.loads((demo_clip / "truth.json").read_text())
    cfg, _ = site_config(truth, demo_clip / "video.mp4", tmp_path)
    cam = cfg.cameras[0].model_copy(update={"analysis_fps": fps})
    cfg = cfg.model_copy(update={"cameras": [cam]})
    detector = SampledLabelDetector(demo_clip / "labels", float(truth["fps"]), fps)

    report = analyze_clip(demo_clip / "video.mp4", cfg, cam.id, tmp_path, detector=detector, progress=False,
                          write_video=False, start_wall=T0)

    assert report.frames_analysed == pytest.approx(truth["frame_count"] / truth["fps"] * fps, abs=1)
    started = [e for e in report.events if e.phase == "started"]
    assert sorted(e.type for e in started) == sorted(i["type"] for i in truth["incidents"]), (
        f"at {fps} fps: {[(e.type, e.started_at.isoformat()) for e in started]}")
    tolerance = 1.0 / fps + MARGIN_S
    for inc in truth["incidents"]:
        (event,) = [e for e in started if e.type == inc["type"]]
        start_s = (event.started_at - T0).total_seconds()
        assert abs(start_s - inc["start_s"]) <= tolerance, (
            f"{inc['type']} at {fps} fps started at {start_s:.2f} s, truth {inc['start_s']} s (± {tolerance:.2f})")
