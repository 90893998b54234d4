"""Deciding whether a new model may run, swapping it between frames, and rolling back on the gateway's own."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridwatch.edge.config import SiteConfig, parse_site_config
from gridwatch.edge.model_receiver import Complete
from gridwatch.edge.model_store import ModelStore, StoreState
from gridwatch.edge.model_swap import Probation, RecentFrames, SwappableDetector, Verdict, judge
from gridwatch.edge.model_update import ModelUpdater, startup_detector, store_root
from gridwatch.models.base import Detector, ModelLoadError
from gridwatch.models.registry import OnnxDetectorSpec, load_detector
from gridwatch.wire.model_update import parse_control
from tests.model_updates import DEMO_DIR, DEMO_STEM, CountingDetector, fake_bundle, keypair, messages, repackaged_demo

IMAGE = np.zeros((48, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize(("previous", "candidate", "frames", "ok", "text"), [
    (40, 12, 10, True, "30%"),  # exactly the documented floor passes
    (40, 11, 10, False, "detection rate collapsed"),
    (40, 0, 10, False, "detection rate collapsed"),
    (40, 90, 10, True, "225%"),  # finding more is not a collapse
    (0, 0, 10, True, "nothing to compare"),
    (0, 0, 0, True, "no analysed frames"),
])
def test_judge_refuses_a_collapse_below_the_ratio_on_the_same_frames(
    previous: int, candidate: int, frames: int, ok: bool, text: str,
) -> None:
    verdict = judge(previous, candidate, frames, 0.3)
    assert verdict.ok is ok and text in verdict.reason


def test_a_swap_takes_effect_on_the_next_frame_and_info_names_the_model_that_ran() -> None:
    old, new = CountingDetector(2, version="1", sha="1"), CountingDetector(3, version="2", sha="2")
    swappable = SwappableDetector(old)
    assert len(swappable.detect(IMAGE)) == 2 and swappable.info.version == "1"
    seen: list[str] = []

    def other_camera() -> None:  # a camera thread that has not analysed a frame since the swap
        swappable.detect(IMAGE)
        seen.append(swappable.info.version)

    assert swappable.swap(new) is old
    assert swappable.info.version == "1"  # this thread's last frame ran on the old model
    assert len(swappable.detect(IMAGE)) == 3 and swappable.info.version == "2"
    t = threading.Thread(target=other_camera)
    t.start()
    t.join()
    assert seen == ["2"]


def _probation(candidate: Detector, previous: Detector, ends: list[Verdict], frames: int = 10) -> Probation:
    return Probation(candidate, previous, frames=frames, every=2, min_ratio=0.3, on_end=ends.append)


def test_probation_rolls_back_when_the_new_model_collapses_on_live_frames() -> None:
    old, new = CountingDetector(10, sha="1"), CountingDetector(1, sha="2")
    swappable, ends = SwappableDetector(old), []  # type: ignore[var-annotated]
    swappable.swap(new, _probation(new, old, ends))
    for _ in range(9):
        swappable.detect(IMAGE)
    assert swappable.current is new and ends == []
    swappable.detect(IMAGE)  # the 10th frame ends probation
    assert swappable.current is old and not swappable.on_probation
    assert len(ends) == 1 and not ends[0].ok and "5 detections against the previous model's 50 on the same 5 " \
        "frames" in ends[0].reason
    assert old.calls == 5  # shadow runs: one frame in two


def test_probation_passes_a_model_that_keeps_finding_things() -> None:
    old, new = CountingDetector(10, sha="1"), CountingDetector(8, sha="2")
    swappable, ends = SwappableDetector(old), []  # type: ignore[var-annotated]
    swappable.swap(new, _probation(new, old, ends))
    for _ in range(12):
        swappable.detect(IMAGE)
    assert swappable.current is new and [v.ok for v in ends] == [True]
    assert old.calls == 5  # no shadow runs after probation


def test_a_new_model_that_raises_on_a_frame_is_rolled_back_and_the_frame_is_still_analysed() -> None:
    old, new = CountingDetector(4, sha="1"), CountingDetector(4, sha="2", fail=True)
    swappable, ends = SwappableDetector(old), []  # type: ignore[var-annotated]
    swappable.swap(new, _probation(new, old, ends))
    assert len(swappable.detect(IMAGE)) == 4
    assert swappable.current is old and "failed on a frame: RuntimeError: bad graph" in ends[0].reason


# --- the updater, with a fake loader ---------------------------------------------------------------------------
def site(tmp: Path, **update: Any) -> SiteConfig:
    _, public = keypair()
    return parse_site_config({
        "site_id": "s1", "gateway_id": "gw1",
        "detector": {"type": "onnx", "model": str(DEMO_DIR / f"{DEMO_STEM}.onnx")},
        "outbox": {"path": str(tmp / "outbox.db")},
        "model_update": {"trusted_keys": [public.text], "probation_frames": 0, **update},
        "cameras": [{"id": "cam1", "source": {"type": "file", "path": str(tmp / "clip.mp4")}}],
    })


def complete(tmp: Path, version: str = "2.0.0") -> Complete:
    bundle = fake_bundle(tmp / f"bundle-{version}", version=version)
    key, _ = keypair()
    offer = parse_control(messages(bundle, "s1", "gw1", key, issued_ms=7_000)[0])[0]
    staged = tmp / "model-updates" / "staging"
    staged.mkdir(parents=True, exist_ok=True)
    model, manifest = staged / "x.onnx", staged / "x.json"
    model.write_bytes(bundle.model_path.read_bytes())
    manifest.write_bytes(bundle.manifest)
    return Complete(offer, model, manifest)  # type: ignore[arg-type]


def updater(cfg: SiteConfig, running: Detector, candidate: Detector | Exception,
            frames: int = 4) -> tuple[ModelUpdater, SwappableDetector, list[dict[str, Any]]]:
    def load(spec: OnnxDetectorSpec, _cfg: SiteConfig) -> Detector:
        if isinstance(candidate, Exception):
            raise candidate
        return candidate

    recent = RecentFrames(cfg.model_update.compare_frames)
    for _ in range(frames):
        recent.add(IMAGE)
    swappable = SwappableDetector(running)
    reports: list[dict[str, Any]] = []
    return ModelUpdater(cfg, swappable, recent, on_outcome=reports.append, loader=load), swappable, reports


def test_a_fit_model_is_swapped_in_persisted_and_reported(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    old, new = CountingDetector(5, sha="1"), CountingDetector(4, version="2.0.0", sha="2")
    up, swappable, reports = updater(cfg, old, new)
    up.install(complete(tmp_path))
    assert swappable.current is new
    assert [r["result"] for r in reports] == ["installed"] and "16 detections against the previous model's 20 on " \
        "the same 4 frames" in reports[0]["reason"]
    state = ModelStore(store_root(cfg)).load()
    assert state.active is not None and state.active.version == "2.0.0" and state.last_issued_ms == 7_000
    assert state.active.model.is_file() and up.receiver.last_issued_ms == 7_000


def test_a_collapsing_model_is_refused_and_the_old_one_keeps_running(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    old, new = CountingDetector(10, sha="1"), CountingDetector(2, sha="2")
    up, swappable, reports = updater(cfg, old, new)
    done = complete(tmp_path)
    up.install(done)
    assert swappable.current is old
    assert reports[0]["result"] == "refused" and "detection rate collapsed" in reports[0]["reason"]
    assert ModelStore(store_root(cfg)).load().active is None
    assert not done.model_path.exists()


def test_a_model_that_does_not_load_is_refused_with_the_loader_s_reason(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    old = CountingDetector(10, sha="1")
    up, swappable, reports = updater(cfg, old, ModelLoadError("the runtime rejects the graph"))
    up.install(complete(tmp_path))
    assert swappable.current is old
    assert reports[0]["result"] == "refused" and "failed to load: the runtime rejects the graph" in reports[0]["reason"]


def test_probation_collapse_restores_the_previous_choice_on_disk(tmp_path: Path) -> None:
    cfg = site(tmp_path, probation_frames=4, probation_every=1)
    old, new = CountingDetector(10, sha="1"), CountingDetector(10, version="2.0.0", sha="2")
    up, swappable, reports = updater(cfg, old, new)
    up.start()
    try:
        up.install(complete(tmp_path))
        assert swappable.current is new and swappable.on_probation
        new.n = 0  # the live scene defeats the new model
        for _ in range(4):
            swappable.detect(IMAGE)
        assert swappable.current is old  # at once, on the camera thread; the bookkeeping follows on the updater's
        deadline = time.monotonic() + 5
        while len(reports) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        up.stop()
    assert [r["result"] for r in reports] == ["installed", "rolled_back"]
    assert "detection rate collapsed" in reports[1]["reason"]
    assert ModelStore(store_root(cfg)).load().active is None  # the configured model again


def test_a_restart_runs_the_installed_model_and_falls_back_when_it_no_longer_loads(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    bundle = repackaged_demo(tmp_path / "new", version="0.2.0")
    store = ModelStore(store_root(cfg))
    staged = store.staging
    staged.mkdir(parents=True, exist_ok=True)
    (staged / "t.onnx").write_bytes(bundle.model_path.read_bytes())
    (staged / "t.json").write_bytes(bundle.manifest)
    installed = store.install(staged / "t.onnx", staged / "t.json", bundle.name, bundle.version, bundle.sha256, "t")
    store.save(StoreState(active=installed, last_issued_ms=9))
    configured = load_detector(cfg.detector, site=cfg)
    detector, note = startup_detector(cfg, configured)
    assert (detector.info.version, note) == ("0.2.0", None)

    installed.model.write_bytes(b"damaged on disk")
    detector, note = startup_detector(cfg, configured)
    assert detector.info.version == json.loads((DEMO_DIR / f"{DEMO_STEM}.json").read_text())["version"]
    assert note is not None and note["result"] == "rolled_back" and "failed to load at start" in note["reason"]
    after = store.load()
    assert after.active is None and after.last_issued_ms == 9


def test_recent_frames_keep_one_analysed_frame_in_n_per_camera_and_only_the_newest() -> None:
    from types import SimpleNamespace

    recent = RecentFrames(3, every=2)
    cam_a, cam_b = recent.sink(), recent.sink()
    for i in range(6):
        image = np.full((2, 2, 3), i, dtype=np.uint8)
        cam_a.on_frame(SimpleNamespace(frame=SimpleNamespace(image=image)))  # type: ignore[arg-type]
    cam_b.on_frame(SimpleNamespace(frame=SimpleNamespace(image=np.full((2, 2, 3), 99, dtype=np.uint8))))  # type: ignore[arg-type]
    assert [int(im[0, 0, 0]) for im in recent.snapshot()] == [2, 4, 99]
