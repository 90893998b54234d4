"""Render a scenario to disk: ``video.mp4`` + ``labels/NNNNNN.txt`` (YOLO) + ``truth.json``.

The labels directory holds one file per frame (empty when nothing is labelled), named by frame index,
so a test or an evaluator can line frames up with the video by index.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2

from gridwatch.synth.dataset import write_yolo_labels
from gridwatch.synth.scenario import Scenario, load_scenario
from gridwatch.synth.scene import Scene
from gridwatch.synth.truth import build_truth


def _progress(i: int, total: int, started: float, enabled: bool) -> None:
    if enabled and ((i + 1) % 25 == 0 or i + 1 == total):
        rate = (i + 1) / max(1e-6, time.monotonic() - started)
        end = "\n" if i + 1 == total else ""
        print(f"\r[synth] frame {i + 1}/{total} ({rate:.1f} fps)", end=end, file=sys.stderr, flush=True)


def generate(scenario: str | Path | Scenario, out_dir: str | Path, progress: bool = False) -> Path:
    """Render ``scenario`` (a YAML path or a model) into ``out_dir``; returns the video path."""
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    out = Path(out_dir)
    labels_dir = out / "labels"
    labels_dir.mkdir(parents=True, exist_ok=True)
    scene = Scene.compile(sc)
    w, h = sc.resolution
    video = out / "video.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), sc.fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot open a video writer for {video} (OpenCV built without mp4v?)")
    started = time.monotonic()
    try:
        for i in range(sc.frame_count):
            frame = scene.frame_at(i / sc.fps, i)
            writer.write(frame.image)
            write_yolo_labels(labels_dir / f"{i:06d}.txt", frame)
            _progress(i, sc.frame_count, started, progress)
    finally:
        writer.release()
    build_truth(scene).write(out / "truth.json")
    (out / "scenario.json").write_text(sc.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return video
