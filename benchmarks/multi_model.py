"""Two models on one camera, each at its own rate: what a slow model's `every_s` buys.

    python benchmarks/multi_model.py --json out/multi_model.json [--repeats 3] [--every-s 2]

On the real Arlington kerb clip (from ../shared/data/real or $GRIDWATCH_SHARED), `analyze` (no video) with
YOLOX-Nano (COCO) on every analysed frame, then with the demo model added on every frame, then with the demo
model every `--every-s` seconds (`cameras[].detectors: [coco, {name: demo, every_s: N}]`). Each detector uses one
thread. Reports analysed frames per second (median of the repeats) and how often each model ran.

Goal: the two-model camera with the slow model every 2 s keeps at least half the throughput of YOLOX-Nano alone
(a second model at a low rate must cost little), and still >= 5 analysed frames/s (real time at the default rate).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gridwatch.edge.analyze import analyze_clip  # noqa: E402
from gridwatch.edge.config import parse_site_config  # noqa: E402
from gridwatch.edge.detectors import load_detectors  # noqa: E402
from gridwatch.models.base import Detector  # noqa: E402

CLIP = "videos/arlington_crystal_dr_curb_parked.avi"
KERB = [[0, 576], [0, 300], [300, 130], [345, 130], [240, 300], [120, 480], [80, 576]]
TARGET_SHARE = 0.5
TARGET_FPS = 5.0


def shared_root() -> Path:
    return Path(os.environ.get("GRIDWATCH_SHARED", REPO.parent / "shared")) / "data" / "real"


def site(shared: Path, detectors: list[Any]) -> dict[str, Any]:
    both = len(detectors) > 1
    incidents: dict[str, Any] = {"illegal_parking": {"zones": ["left_kerb"], "dwell_s": 3.0,
                                                     "classes": ["car", "truck", "bus"]}}
    if both:
        incidents["street_vendor"] = {"dwell_s": 3.0, "classes": ["stall"], "goods_classes": []}
    return {
        "site_id": "bench", "gateway_id": "gw",
        "detectors": {
            "coco": {"type": "onnx", "model": str(shared / "models" / "yolox_nano.onnx"),
                     "manifest": str(REPO / "models" / "manifests" / "yolox_nano_coco80.json"), "conf": 0.3,
                     "threads": 1},
            "demo": {"type": "onnx", "model": str(REPO / "models" / "demo" / "gridwatch-demo-yolo11n.onnx"),
                     "conf": 0.3, "threads": 1, "rename": {"car": "demo_car", "person": "demo_person"}},
        },
        "cameras": [{"id": "cam", "source": {"type": "file", "path": str(shared / CLIP)}, "analysis_fps": 5,
                     "detectors": detectors, "scene_change": {"enabled": False},
                     "zones": [{"name": "left_kerb", "points": KERB}], "incidents": incidents}],
    }


class Counting:
    def __init__(self, inner: Detector) -> None:
        self.inner, self.info, self.calls = inner, inner.info, 0

    def detect(self, image: np.ndarray) -> sv.Detections:
        self.calls += 1
        return self.inner.detect(image)


@dataclass(frozen=True)
class Result:
    setup: str
    frames_analysed: int
    analyze_fps: float
    runs: dict[str, int]
    incidents: int


def measure(setup: str, detectors: list[Any], repeats: int) -> Result:
    cfg = parse_site_config(site(shared_root(), detectors))
    loaded = load_detectors(cfg)
    rates, frames, runs, incidents = [], 0, {}, 0
    for _ in range(repeats):
        counting = {name: Counting(det) for name, det in loaded.items()}
        with tempfile.TemporaryDirectory() as tmp:
            report = analyze_clip(shared_root() / CLIP, cfg, "cam", Path(tmp), detector=counting, progress=False,
                                  write_video=False)
        rates.append(report.analysed_fps)
        frames, runs = report.frames_analysed, {n: c.calls for n, c in counting.items() if c.calls}
        incidents = len(report.incidents)
    return Result(setup, frames, statistics.median(rates), runs, incidents)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the goals and runs here")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--every-s", type=float, default=2.0)
    args = parser.parse_args(argv)
    results = [
        measure("coco", ["coco"], args.repeats),
        measure("coco+demo", ["coco", "demo"], args.repeats),
        measure(f"coco+demo@{args.every_s:g}s", ["coco", {"name": "demo", "every_s": args.every_s}], args.repeats),
    ]
    print(f"{'setup':18} {'frames':>6} {'analyze fps':>12} {'incidents':>9}  runs")
    for r in results:
        print(f"{r.setup:18} {r.frames_analysed:6d} {r.analyze_fps:12.1f} {r.incidents:9d}  {r.runs}")
    alone, slow = results[0], results[2]
    share = slow.analyze_fps / alone.analyze_fps if alone.analyze_fps else 0.0
    goals = [
        {"name": "two_models_slow_every_s_share_of_one_model_fps", "value": round(share, 3), "target": TARGET_SHARE,
         "unit": "ratio", "met": share >= TARGET_SHARE},
        {"name": "two_models_slow_every_s_fps", "value": round(slow.analyze_fps, 2), "target": TARGET_FPS,
         "unit": "analysed frames/s", "met": slow.analyze_fps >= TARGET_FPS},
    ]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"goals": goals, "runs": [asdict(r) for r in results],
                   "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg": os.getloadavg()}}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
