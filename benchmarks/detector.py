"""Detector latency / FPS: YOLOX-Nano (COCO-80) on the Arlington kerb clip with ONNX Runtime on the CPU.

    python benchmarks/detector.py --json out/detector.json [--threads 1 2] [--repeats 3]

Times the full `detect()` (letterbox + network + decode/NMS) per frame for each intra-op thread count, and
splits it into preprocess / network / postprocess. Prints a table and, with --json, writes::

    {"goals": [{"name": "yolox_nano_fps_cpu", "value", "target": 10, "unit": "fps", "met"}],
     "runs": [...], ...}

The goal value is the end-to-end FPS of the best thread count. The numbers are only as quiet as the machine:
the load average at start is recorded so a busy box can be recognised.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere without installing the package
    sys.path.insert(0, str(REPO))

from gridwatch.models.decoders import preprocess  # noqa: E402
from gridwatch.models.onnx_backend import OnnxDetector  # noqa: E402

MANIFEST = REPO / "models" / "manifests" / "yolox_nano_coco80.json"
CLIP = "videos/arlington_crystal_dr_curb_parked.avi"
GOAL_NAME, GOAL_TARGET_FPS = "yolox_nano_fps_cpu", 10.0


@dataclass(frozen=True)
class Run:
    """Per-frame timings (milliseconds) for one thread count."""

    threads: int
    frames: int
    fps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    max_ms: float
    preprocess_ms: float
    network_ms: float
    postprocess_ms: float
    detections_per_frame: float


def shared_real_dir() -> Path:
    return Path(os.environ.get("GRIDWATCH_SHARED", str(REPO.parent / "shared"))) / "data" / "real"


def read_clip(path: Path, limit: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SystemExit(f"could not decode any frame from {path}")
    return frames


@dataclass
class Samples:
    """Raw per-frame timings (ms) and detection counts collected for one thread count."""

    total: list[float] = field(default_factory=list)
    pre: list[float] = field(default_factory=list)
    net: list[float] = field(default_factory=list)
    post: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)


def one_pass(det: OnnxDetector, frames: list[np.ndarray], into: Samples) -> None:
    """Time preprocess, network and decode/NMS separately on every frame (their sum is detect())."""
    for frame in frames:
        t0 = time.perf_counter()
        tensor = preprocess(frame, det.manifest)
        t1 = time.perf_counter()
        raw = det.run_raw(tensor)
        t2 = time.perf_counter()
        out = det.decode_raw(raw, (frame.shape[1], frame.shape[0]))
        t3 = time.perf_counter()
        into.pre.append((t1 - t0) * 1000.0)
        into.net.append((t2 - t1) * 1000.0)
        into.post.append((t3 - t2) * 1000.0)
        into.total.append((t3 - t0) * 1000.0)
        into.counts.append(len(out))


def summarise(threads: int, s: Samples) -> Run:
    mean = statistics.fmean(s.total)
    return Run(
        threads=threads,
        frames=len(s.total),
        fps=round(1000.0 / mean, 1),
        mean_ms=round(mean, 2),
        p50_ms=round(statistics.median(s.total), 2),
        p90_ms=round(statistics.quantiles(s.total, n=10)[8], 2),
        max_ms=round(max(s.total), 2),
        preprocess_ms=round(statistics.fmean(s.pre), 2),
        network_ms=round(statistics.fmean(s.net), 2),
        postprocess_ms=round(statistics.fmean(s.post), 2),
        detections_per_frame=round(statistics.fmean(s.counts), 1),
    )


def measure(model: Path, frames: list[np.ndarray], threads: list[int], repeats: int, warmup: int) -> list[Run]:
    """Interleave passes over the clip across thread counts so background-load drift hits all alike."""
    detectors = {t: OnnxDetector.from_path(model, MANIFEST, threads=t) for t in threads}
    for det in detectors.values():
        for frame in frames[:warmup]:
            det.detect(frame)
    samples = {t: Samples() for t in threads}
    for _ in range(repeats):
        for t, det in detectors.items():
            one_pass(det, frames, samples[t])
    return [summarise(t, samples[t]) for t in threads]


def print_table(runs: list[Run]) -> None:
    head = f"{'threads':>7} {'frames':>6} {'fps':>7} {'mean':>7} {'p50':>7} {'p90':>7} {'max':>7}"
    head += f" {'pre':>6} {'net':>6} {'post':>6} {'dets':>5}"
    print(head + "   (ms)")
    for r in runs:
        print(
            f"{r.threads:>7} {r.frames:>6} {r.fps:>7.1f} {r.mean_ms:>7.2f} {r.p50_ms:>7.2f} {r.p90_ms:>7.2f}"
            f" {r.max_ms:>7.2f} {r.preprocess_ms:>6.2f} {r.network_ms:>6.2f} {r.postprocess_ms:>6.2f}"
            f" {r.detections_per_frame:>5.1f}"
        )


def report(runs: list[Run], model: Path, load: tuple[float, float, float]) -> dict[str, Any]:
    best = max(runs, key=lambda r: r.fps)
    goal = {
        "name": GOAL_NAME,
        "value": best.fps,
        "target": GOAL_TARGET_FPS,
        "unit": "fps",
        "met": best.fps >= GOAL_TARGET_FPS,
    }
    return {
        "goals": [goal],
        "best_threads": best.threads,
        "runs": [asdict(r) for r in runs],
        "model": str(model),
        "clip": CLIP,
        "measures": "end-to-end OnnxDetector.detect (preprocess + network + decode/NMS), batch 1, 416x416",
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "providers": ["CPUExecutionProvider"],
            "loadavg_at_start": [round(x, 2) for x in load],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the clip per thread count")
    parser.add_argument("--max-frames", type=int, default=120, help="frames read from the clip")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls before measuring")
    args = parser.parse_args(argv)

    data = shared_real_dir()
    model = data / "models" / "yolox_nano.onnx"
    frames = read_clip(data / CLIP, args.max_frames)
    load = os.getloadavg()
    runs = measure(model, frames, args.threads, args.repeats, args.warmup)
    print_table(runs)
    result = report(runs, model, load)
    goal = result["goals"][0]
    print(f"{goal['name']}: {goal['value']} fps (target {goal['target']}) -> {'met' if goal['met'] else 'NOT met'}")
    print(f"load average at start: {load[0]:.2f} on {os.cpu_count()} cores")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
