"""Scene-change stage cost relative to the detector, on the real clips at 2 analysis fps.

    python benchmarks/scene_change.py --json out/scene_change.json [--threads 1] [--size 640x360]

For every real clip (../shared/data/real/videos) the frames an analysis at 2 fps keeps are resized to `--size`
(640x360: the frame size the cost goal is stated for) and, frame by frame, timed through YOLOX-Nano's `detect()`
and through `SceneChangeStage.update()` (fed the previous frame's person/vehicle boxes, as in the pipeline).
Both run with the same thread budget (`--threads` for ONNX Runtime and OpenCV), so the ratio does not depend on
how many idle cores the machine has. Prints a table and, with --json, writes::

    {"goals": [{"name": "scene_change_cost_ratio", "value", "target": 0.25, "unit": "x detector", "met"}],
     "clips": [...], ...}

The goal value is the ratio of the median stage time to the median detect() time over all frames. The numbers
are only as quiet as the machine: the load average at start is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere without installing the package
    sys.path.insert(0, str(REPO))

from gridwatch.edge.config import SceneChangeConfig  # noqa: E402
from gridwatch.edge.scene.stage import SceneChangeStage  # noqa: E402
from gridwatch.models.onnx_backend import OnnxDetector  # noqa: E402

MANIFEST = REPO / "models" / "manifests" / "yolox_nano_coco80.json"
GOAL_NAME, GOAL_TARGET = "scene_change_cost_ratio", 0.25
ANALYSIS_FPS = 2.0


@dataclass(frozen=True)
class ClipRun:
    """Per-clip timings (ms, medians) and what the stage reported."""

    clip: str
    frames: int
    detect_ms: float
    stage_ms: float
    ratio: float
    stage_p90_ms: float
    frames_with_regions: int
    paused_frames: int


def shared_real_dir() -> Path:
    return Path(os.environ.get("GRIDWATCH_SHARED", str(REPO.parent / "shared"))) / "data" / "real"


def sampled_frames(path: Path, size: tuple[int, int]) -> list[tuple[float, np.ndarray]]:
    """(capture time, frame resized to `size`) for the frames a 2 fps analysis keeps."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out: list[tuple[float, np.ndarray]] = []
    index, next_ts = 0, 0.0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        ts = index / fps
        index += 1
        if ts + 1e-6 < next_ts:
            continue
        next_ts += 1.0 / ANALYSIS_FPS
        out.append((ts, np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))))
    cap.release()
    return out


def time_clip(name: str, frames: list[tuple[float, np.ndarray]], det: OnnxDetector) -> tuple[ClipRun, list[float],
                                                                                               list[float]]:
    stage = SceneChangeStage(SceneChangeConfig())
    det_ms: list[float] = []
    stage_ms: list[float] = []
    previous: sv.Detections | None = None
    with_regions = paused = 0
    for ts, frame in frames:
        t0 = time.perf_counter()
        raw = det.detect(frame)
        t1 = time.perf_counter()
        out = stage.update(frame, ts, previous)
        t2 = time.perf_counter()
        det_ms.append((t1 - t0) * 1000.0)
        stage_ms.append((t2 - t1) * 1000.0)
        previous = raw  # untracked, but the boxes are what the mask needs
        with_regions += int(len(out.regions) > 0)
        paused += int(out.paused)
    d, s = statistics.median(det_ms), statistics.median(stage_ms)
    run = ClipRun(name, len(frames), round(d, 2), round(s, 2), round(s / d, 3),
                  round(statistics.quantiles(stage_ms, n=10)[8], 2), with_regions, paused)
    return run, det_ms, stage_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--threads", type=int, default=1, help="threads for ONNX Runtime and OpenCV")
    parser.add_argument("--size", default="640x360", help="frame size both stages get, WxH")
    parser.add_argument("--warmup", type=int, default=3, help="untimed detect() calls before measuring")
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    cv2.setNumThreads(args.threads)
    data = shared_real_dir()
    model = data / "models" / "yolox_nano.onnx"
    det = OnnxDetector.from_path(model, MANIFEST, threads=args.threads)
    load = os.getloadavg()
    clips = sorted((data / "videos").iterdir())
    runs: list[ClipRun] = []
    all_det: list[float] = []
    all_stage: list[float] = []
    for clip in clips:
        frames = sampled_frames(clip, (w, h))
        for _, frame in frames[: args.warmup]:
            det.detect(frame)
        run, d, s = time_clip(clip.name, frames, det)
        runs.append(run)
        all_det += d
        all_stage += s
    ratio = statistics.median(all_stage) / statistics.median(all_det)
    print(f"{'clip':<48} {'frames':>6} {'detect':>7} {'stage':>7} {'p90':>7} {'ratio':>6} {'regions':>7} {'paused':>6}")
    for r in runs:
        print(f"{r.clip[:48]:<48} {r.frames:>6} {r.detect_ms:>7.2f} {r.stage_ms:>7.2f} {r.stage_p90_ms:>7.2f}"
              f" {r.ratio:>6.3f} {r.frames_with_regions:>7} {r.paused_frames:>6}")
    goal = {"name": GOAL_NAME, "value": round(ratio, 3), "target": GOAL_TARGET, "unit": "x detector",
            "met": ratio <= GOAL_TARGET}
    print(f"{GOAL_NAME}: {goal['value']} (target <= {GOAL_TARGET}) -> {'met' if goal['met'] else 'NOT met'}")
    print(f"load average at start: {load[0]:.2f} on {os.cpu_count()} cores")
    result: dict[str, Any] = {
        "goals": [goal],
        "clips": [asdict(r) for r in runs],
        "detect_ms_median": round(statistics.median(all_det), 2),
        "stage_ms_median": round(statistics.median(all_stage), 2),
        "frame_size": [w, h],
        "analysis_fps": ANALYSIS_FPS,
        "threads": args.threads,
        "model": str(model),
        "measures": "median SceneChangeStage.update vs median OnnxDetector.detect on the same frames",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "opencv": cv2.__version__,
                    "loadavg_at_start": [round(x, 2) for x in load]},
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
