"""Throughput of `gridwatch analyze` (the whole edge chain) against the detector alone, in the same run.

    python benchmarks/analyze.py --json out/analyze.json [--repeats 3]

Clips: the real Arlington kerb clip with YOLOX-Nano (from ../shared/data/real or $GRIDWATCH_SHARED) and, when the
demo model is present, the generated demo clip with the shipped demo model. For each clip it measures

- detector only: `detect()` on every analysed frame (the baseline),
- analyze: decode + sample + detect + track + geotag + rules + events (no video writing),

and reports analysed frames per second plus the ratio analyze / detector (how much the rest of the chain costs;
machines are noisy, ratios less so). Goals: analysed fps >= 5 on each clip (one camera at the default
analysis_fps of 5 keeps up in real time), and pipeline overhead ratio >= 0.7.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402
from report import write_report  # noqa: E402

from gridwatch.edge.analyze import analyze_clip  # noqa: E402
from gridwatch.edge.config import FileSourceConfig, SiteConfig, parse_site_config  # noqa: E402
from gridwatch.edge.sources import FileSource, Sampler  # noqa: E402
from gridwatch.models.base import Detector  # noqa: E402
from gridwatch.models.registry import load_detector  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
TARGET_FPS = 5.0
TARGET_RATIO = 0.7


@dataclass(frozen=True)
class Result:
    clip: str
    frames_analysed: int
    detector_fps: float
    analyze_fps: float

    @property
    def ratio(self) -> float:
        return self.analyze_fps / self.detector_fps if self.detector_fps else 0.0


def shared_root() -> Path:
    return Path(os.environ.get("GRIDWATCH_SHARED", REPO.parent / "shared")) / "data" / "real"


def arlington_config() -> SiteConfig:
    text = (FIXTURES / "arlington.yaml").read_text().replace("${SHARED}", str(shared_root()))
    return parse_site_config(yaml.safe_load(text), "arlington.yaml", base=FIXTURES)


def detector_only(clip: Path, detector: Detector, fps: float) -> tuple[int, float]:
    sampler = Sampler(fps)
    frames = [f for f in FileSource(clip, "bench") if sampler.accept(f)]
    t0 = time.perf_counter()
    for f in frames:
        detector.detect(f.image)
    return len(frames), len(frames) / (time.perf_counter() - t0)


def measure(name: str, clip: Path, cfg: SiteConfig, repeats: int) -> Result:
    assert cfg.detector is not None, f"{name}: the benchmark measures one detector (`detector:`)"
    detector = load_detector(cfg.detector)
    cam = cfg.cameras[0]
    detector.detect(FileSource(clip, "warm").__iter__().__next__().image)  # warm-up: session init, caches
    det, ana, n = [], [], 0
    for _ in range(repeats):
        n, fps = detector_only(clip, detector, cam.analysis_fps)
        det.append(fps)
        with tempfile.TemporaryDirectory() as tmp:
            report = analyze_clip(clip, cfg, cam.id, Path(tmp), detector=detector, progress=False, write_video=False)
        ana.append(report.analysed_fps)
    return Result(name, n, statistics.median(det), statistics.median(ana))


def demo_case() -> tuple[Path, SiteConfig] | None:
    from gridwatch.app.demo import MODEL, ensure_clip, site_config

    if not MODEL.exists():
        return None
    out = Path(tempfile.mkdtemp(prefix="gridwatch-bench-"))
    clip, truth = ensure_clip(out, regenerate=False)
    cfg, _ = site_config(truth, clip, out)
    return clip, cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the goals and runs here")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    cfg = arlington_config()
    source = cfg.cameras[0].source
    assert isinstance(source, FileSourceConfig)
    cases: list[tuple[str, Path, SiteConfig]] = [("arlington+yolox_nano", source.path, cfg)]
    demo = demo_case()
    if demo:
        cases.append(("demo+gridwatch-demo-yolo11n", demo[0], demo[1]))
    results = [measure(name, clip, c, args.repeats) for name, clip, c in cases]

    print(f"{'clip':34} {'frames':>6} {'detector fps':>13} {'analyze fps':>12} {'ratio':>6}")
    for r in results:
        print(f"{r.clip:34} {r.frames_analysed:6d} {r.detector_fps:13.1f} {r.analyze_fps:12.1f} {r.ratio:6.2f}")
    goals: list[dict[str, Any]] = []
    for r in results:
        goals.append({"name": f"analyze_fps[{r.clip}]", "value": round(r.analyze_fps, 2), "target": TARGET_FPS,
                      "unit": "analysed frames/s", "met": r.analyze_fps >= TARGET_FPS})
        goals.append({"name": f"pipeline_over_detector_ratio[{r.clip}]", "value": round(r.ratio, 3),
                      "target": TARGET_RATIO, "unit": "ratio", "met": r.ratio >= TARGET_RATIO})
    if args.json:
        write_report(args.json, {"goals": goals, "runs": [asdict(r) | {"ratio": r.ratio} for r in results]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
