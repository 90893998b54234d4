"""Hard examples from the field (`gridwatch.edge.hard_examples`): what is saved, how often, within what disk budget."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import supervision as sv

from gridwatch.edge.analyze import analyze_clip
from gridwatch.edge.camera import CameraPipeline, FrameResult
from gridwatch.edge.config import HardExamplesConfig, parse_site_config
from gridwatch.edge.frames import Frame
from gridwatch.edge.hard_examples import ExampleStore, HardExampleSink, unnamed_regions
from gridwatch.models.hard_examples import HardExample, read_examples
from gridwatch.pipelines.types import IncidentUpdate, ObjectRef
from tests.edge.test_analyze import noisy_clip
from tests.edge.test_detectors import coco, site, street

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


def frames(n: int, fps: float = 5.0) -> list[Frame]:
    rng = np.random.default_rng(0)
    return [Frame("cam1", i, i / fps, T0 + timedelta(seconds=i / fps), rng.integers(0, 255, (90, 160, 3), np.uint8))
            for i in range(n)]


def run_pipeline(tmp_path: Path, every_s: float, max_bytes: int = 10_000_000) -> ExampleStore:
    cfg = parse_site_config(site(detectors=["coco", {"name": "street", "every_s": 3}],
                                 scene_change={"enabled": False}))
    # coco: a sure person on every frame, an unsure car (0.35) from 4 s on; street: a sure bin, persisted
    fast = coco([[(10, 10, 30, 60, "person", 0.9)]] * 20 + [[(10, 10, 30, 60, "person", 0.9),
                                                             (60, 40, 100, 70, "car", 0.35)]])
    slow = street([[(120, 40, 140, 80, "garbage_bin", 0.8)]])
    pipe = CameraPipeline("s1", "gw1", cfg.cameras[0], {"coco": fast, "street": slow})
    store = ExampleStore(tmp_path / "hard", max_bytes)
    sink = HardExampleSink(HardExamplesConfig(enabled=True, every_s=every_s), store, "s1", "gw1",
                           pipe.detectors.infos())
    for frame in frames(60):  # 12 s
        result = pipe.process(frame)
        assert result is not None
        sink.on_frame(result)
    return store


def test_unsure_frames_are_saved_sampled_with_the_models_fresh_guesses(tmp_path: Path) -> None:
    store = run_pipeline(tmp_path, every_s=3.0)
    examples = read_examples(tmp_path / "hard")
    # unsure from 4 s (frame 20) on, one per 3 s: 4.0, 7.0, 10.0
    assert [ex.ts for _, ex in examples] == [4.0, 7.0, 10.0]
    assert store.saved == 3 and store.deleted == 0
    first = examples[0][1]
    assert first.reasons == ["low_confidence"] and (first.width, first.height) == (160, 90)
    assert set(first.models) == {"coco", "street"} and first.models["coco"].name == "coco-model"
    # at 4 s the street model's bin is 1 s old (it ran at 3 s): not a label; at 7 s it is 1 s old again
    assert [(b.class_name, b.detector, b.confidence) for b in first.boxes] == [
        ("person", "coco", 0.9), ("car", "coco", 0.35)]
    assert examples[0][0].parent.name == "cam1" and examples[0][0].name.startswith("20261130T080004_000Z-000020")


def test_a_fresh_run_of_the_slow_model_is_labelled(tmp_path: Path) -> None:
    store = run_pipeline(tmp_path, every_s=2.0)  # 4.0, 6.0, 8.0, 10.0: 6.0 is a street run
    by_ts = {ex.ts: ex for _, ex in read_examples(tmp_path / "hard")}
    assert store.saved == 4
    assert ("garbage_bin", "street") in {(b.class_name, b.detector) for b in by_ts[6.0].boxes}
    assert "garbage_bin" not in {b.class_name for b in by_ts[8.0].boxes}


def test_the_folder_stays_within_its_budget_deleting_the_oldest(tmp_path: Path) -> None:
    one = run_pipeline(tmp_path / "one", every_s=1.0)
    per_example = one.size_bytes // one.saved
    store = run_pipeline(tmp_path / "two", every_s=1.0, max_bytes=int(per_example * 3.5))
    kept = read_examples(tmp_path / "two" / "hard")
    assert store.saved == one.saved == 8 and store.deleted == 5
    assert [ex.ts for _, ex in kept] == [9.0, 10.0, 11.0]  # the newest three
    assert sum(p.stat().st_size for p in (tmp_path / "two" / "hard").rglob("*") if p.is_file()) <= store.max_bytes


def _tracks(rows: list[tuple[int, str, float]]) -> sv.Detections:
    n = len(rows)
    return sv.Detections(
        xyxy=np.array([[10 * i, 0, 10 * i + 8, 8] for i in range(n)], np.float32),
        confidence=np.ones(n, np.float32), tracker_id=np.array([r[0] for r in rows]),
        data={"class_name": np.array([r[1] for r in rows]), "region_age_s": np.array([r[2] for r in rows])},
    )


def test_regions_no_open_incident_names_count_once_they_are_old_enough() -> None:
    tracks = _tracks([(1, "unknown_object", 60.0), (2, "unknown_object", 60.0), (3, "unknown_object", 5.0),
                      (4, "person", float("nan"))])
    held = IncidentUpdate("i", "exposed_garbage", "started", 0, None, 0.0, 60.0, 60.0, 0.9, (10, 0, 18, 8),
                          (14, 8), None, (ObjectRef(2, "unknown_object", 1.0, "subject", (10, 0, 18, 8)),))
    frame = frames(1)[0]
    result = FrameResult("cam1", frame, sv.Detections.empty(), tracks, (), [], (held,), [])
    assert [(b.class_name, b.box, b.source) for b in unnamed_regions(result, 30.0)] == [
        ("unknown_object", (0.0, 0.0, 8.0, 8.0), "region")]  # 2 is the incident's, 3 too young, 4 no region


def test_analyze_saves_hard_examples_when_the_config_enables_them(tmp_path: Path) -> None:
    clip = noisy_clip(tmp_path / "clip.avi", n=40)
    data = {"site_id": "s1", "gateway_id": "gw1", "detector": {"type": "onnx", "model": "unused.onnx"},
            "hard_examples": {"enabled": True, "dir": str(tmp_path / "hard"), "every_s": 1},
            "cameras": [{"id": "cam1", "source": {"type": "file", "path": str(clip)}, "analysis_fps": 5}]}
    cfg = parse_site_config(data)
    from gridwatch.models.fake import FakeDetector

    det = FakeDetector.from_boxes([[(5, 5, 20, 20, "car", 0.3)]], when_exhausted="repeat_last")
    analyze_clip(clip, cfg, "cam1", tmp_path / "out", detector=det, progress=False, write_video=False, start_wall=T0)
    sidecars = sorted((tmp_path / "hard" / "cam1").glob("*.json"))
    assert len(sidecars) == 4  # a 4 s clip, one per second
    ex = HardExample.model_validate(json.loads(sidecars[0].read_text()))
    assert ex.models["default"].name == "fake" and ex.boxes[0].detector == "default"
