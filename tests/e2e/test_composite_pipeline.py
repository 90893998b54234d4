"""One composite scenario end to end: a pile dumped on the real ABODA sidewalk (real noise and compression, played back
and forth), YOLOX-Nano as the detector, every incident type YOLOX-Nano allows (not street_vendor: no stall class) on
over the whole frame, no calibration. The pile is no detector class: only the scene-change path can find it, and it
must, where the truth says, and nothing else.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gridwatch.edge.analyze import analyze_clip
from gridwatch.edge.config import parse_site_config
from gridwatch.synth.composite import CompositeScenario, PastedObject, generate_composite, truth
from gridwatch.wire.events import IncidentEvent

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def analyse(sc: CompositeScenario, shared: Path, tmp: Path) -> tuple[list[IncidentEvent], dict[str, Any]]:
    """Render `sc`, analyse it with YOLOX-Nano and every type it allows on over the whole frame; the started
    events and the scenario's one truth incident."""
    video = generate_composite(sc, shared, tmp / "clip")
    (want,) = truth(sc)["incidents"]
    cfg = parse_site_config({
        "site_id": "s", "gateway_id": "g",
        "detector": {"type": "onnx", "model": str(shared / "models" / "yolox_nano.onnx"),
                     "manifest": str(REPO / "models" / "manifests" / "yolox_nano_coco80.json"), "conf": 0.3},
        "cameras": [{"id": "c", "analysis_fps": 2.0, "source": {"type": "file", "path": str(video)},
                     "incidents": {"illegal_parking": {"dwell_s": 5.0}, "littering": {"dwell_s": 2.0},
                                   "exposed_garbage": {"dwell_s": 5.0}, "fallen_wire": {"dwell_s": 3.0}}}],
    }, "composite")
    report = analyze_clip(video, cfg, "c", tmp / "run", progress=False, write_video=False, start_wall=T0)
    return [e for e in report.events if e.phase == "started"], want


def test_a_pile_on_real_footage_is_found_by_the_scene_change_path(shared_data: Path, tmp_path: Path) -> None:
    sc = CompositeScenario(name="pile_on_aboda", seed=3, background="aboda_empty", duration_s=18.0, objects=[
        PastedObject(id="pile", kind="pile", t=6.0, x=250.0, y=380.0, size_m=1.0, colour=(60, 60, 65), grow_s=2.0)],
        jpeg_quality=70, noise_sigma=2.0)
    started, want = analyse(sc, shared_data, tmp_path)
    assert [e.type for e in started] == ["exposed_garbage"], [(e.type, e.box) for e in started]
    (ev,) = started
    cx, cy = (ev.box.x1 + ev.box.x2) / 2, (ev.box.y1 + ev.box.y2) / 2
    assert math.hypot(cx - want["pixel"][0], cy - want["pixel"][1]) <= want["radius_px"]
    reported_s = (ev.observed_at - T0).total_seconds()
    assert want["start_s"] + 5.0 <= reported_s <= sc.duration_s  # after the dwell, while the clip runs


def test_a_cable_falling_on_real_footage_is_a_fallen_wire_within_two_seconds_of_the_dwell(
    shared_data: Path, tmp_path: Path
) -> None:
    """A thin dark cable falls across the real ABODA sidewalk on a shaking camera with noise: only the scene-change
    path can see it (YOLOX-Nano has no wire class). It is one fallen_wire at the cable, reported at most 2 s after
    its fall + the 3 s dwell (issue 6's delay goal at 2 analysis fps), and nothing else."""
    sc = CompositeScenario(name="wire_on_aboda", seed=11, background="aboda_empty", duration_s=16.0, objects=[
        PastedObject(id="wire", kind="wire", t=6.3, x=330.0, y=300.0, size_m=2.6, colour=(18, 18, 20),
                     angle_deg=-25.0, thickness_m=0.05, fall_s=0.6)],
        jpeg_quality=80, noise_sigma=2.0, effects={"shake_px": 1.0})
    started, want = analyse(sc, shared_data, tmp_path)
    assert [e.type for e in started] == ["fallen_wire"], [(e.type, e.box) for e in started]
    (ev,) = started
    cx, cy = (ev.box.x1 + ev.box.x2) / 2, (ev.box.y1 + ev.box.y2) / 2
    assert math.hypot(cx - want["pixel"][0], cy - want["pixel"][1]) <= want["radius_px"]
    delay = (ev.observed_at - T0).total_seconds() - (want["start_s"] + 3.0)
    assert 0.0 <= delay <= 2.0, delay
