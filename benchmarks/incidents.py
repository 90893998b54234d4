"""Incident accuracy and cost: the synthetic suite, the real clips and the scene-change stage's cost, at 2 fps.

    python benchmarks/incidents.py --json out/incidents.json [--demo-model] [--only NAME ...] [--cache DIR]

1. **Synthetic suite** (synth/scenarios/suite/*.yaml, rendered once into `--cache`): every scenario is analysed
   by `analyze_clip` at 2 analysis fps with every incident type on, the detector being the scenario's own labels
   with `litter` hidden (benchmarks/synth_labels.py), so dropped and piled things come only from the
   scene-change stage. Reports are matched to truth.json (benchmarks/incident_match.py: same type, within
   `SYNTH_RADIUS_M` on the ground, started no earlier than truth start - `START_TOLERANCE_S`). Delay counts from
   the truth's start plus the dwell; for littering from when the owner was `leave_distance_m` away plus the
   dwell (`owner_left_s` in truth.json: the dwell is the time the object lies unattended). `--demo-model`
   repeats the suite with the shipped demo ONNX model (litter filtered out by class_filter); its numbers are
   printed and stored but are not goals.
2. **Real clips** (../shared/data/real, YOLOX-Nano, only zones and `dwell_s` set, 2 analysis fps): ABODA's bag
   as littering within 10 s after the owner leaves (19.5 s) and within 40 px of the annotated bag; Arlington's
   kerb cars as illegal parking and nothing else (littering, exposed garbage on); the negative clips report
   nothing (illegal parking, littering, exposed garbage over the whole frame).
3. **Stage cost**: `SceneChangeStage.update` vs `OnnxDetector.detect` on the same 640x360 real frames, one
   thread each (benchmarks/scene_change.py's functions).

Writes `{"goals": [{"name", "value", "target", "unit", "met"}], "synthetic": ..., "real": ..., "cost": ...}`.
Goals that are not met are reported with their number; nothing here is tuned to pass.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "benchmarks"):
    if str(_p) not in sys.path:  # run as a script from anywhere; sibling helpers import by module name
        sys.path.insert(0, str(_p))

from incident_match import ClipResult, Reported, TruthIncident, TypeScore, match_clip, score  # noqa: E402
from scene_change import sampled_frames, time_clip  # noqa: E402
from synth_labels import HIDDEN_CLASSES, StridedLabelDetector  # noqa: E402

from gridwatch.calibration.geo import wgs84_to_enu  # noqa: E402
from gridwatch.edge.analyze import analyze_clip  # noqa: E402
from gridwatch.edge.config import SiteConfig, parse_site_config  # noqa: E402
from gridwatch.models.base import Detector  # noqa: E402
from gridwatch.models.onnx_backend import OnnxDetector  # noqa: E402
from gridwatch.pipelines.lifecycle import box_iou  # noqa: E402
from gridwatch.synth.generate import generate  # noqa: E402
from gridwatch.synth.scenario import load_scenario  # noqa: E402
from gridwatch.synth.scene import Scene  # noqa: E402
from gridwatch.synth.truth import build_truth  # noqa: E402
from gridwatch.wire.events import IncidentEvent  # noqa: E402

SUITE = REPO / "synth" / "scenarios" / "suite"
YOLOX_MANIFEST = REPO / "models" / "manifests" / "yolox_nano_coco80.json"
DEMO_MODEL = REPO / "models" / "demo" / "gridwatch-demo-yolo11n.onnx"
FIXTURES = REPO / "tests" / "fixtures"
ANALYSIS_FPS = 2.0
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)

TYPES = ("illegal_parking", "littering", "exposed_garbage", "street_vendor", "fallen_wire")
#: Dwell per type on the synthetic suite: short, so 20-60 s clips show every type. Delay is measured after it.
SYNTH_DWELL_S = {"illegal_parking": 5.0, "littering": 2.0, "exposed_garbage": 5.0, "street_vendor": 5.0,
                 "fallen_wire": 3.0}
SYNTH_RADIUS_M = 3.0
START_TOLERANCE_S = 2.5
PRECISION_TARGET = RECALL_TARGET = 0.95
DELAY_TARGET_S = 2.0
COST_TARGET = 0.25

ABODA = "videos/aboda_video4_abandoned_bag_sidewalk.avi"
ARLINGTON = "videos/arlington_crystal_dr_curb_parked.avi"
NEGATIVES = ("videos/bgslibrary_video02_highway_negative.avi", "videos/intel_car-detection_lot_aisle_negative.mp4")
OWNER_LEAVES_S, ABODA_WITHIN_S, ABODA_PX = 19.5, 10.0, 40.0

Goal = dict[str, Any]


def goal(name: str, value: float | None, target: float, unit: str, met: bool) -> Goal:
    return {"name": name, "value": None if value is None else round(value, 3), "target": target, "unit": unit,
            "met": bool(met)}


def shared_real_dir() -> Path:
    return Path(os.environ.get("GRIDWATCH_SHARED", str(REPO.parent / "shared"))) / "data" / "real"


def started(events: list[IncidentEvent]) -> list[IncidentEvent]:
    return [e for e in events if e.phase == "started"]


def offset(when: datetime) -> float:
    return (when - T0).total_seconds()


# --- synthetic suite ------------------------------------------------------------------------------------------
def render(scenario: Path, cache: Path) -> Path:
    """Render `scenario` into cache/<name>/ unless the same scenario is already there; returns that dir."""
    sc = load_scenario(scenario)
    out = cache / scenario.stem
    stamp = out / "scenario.json"
    if not (stamp.exists() and stamp.read_text() == sc.model_dump_json(indent=2) + "\n" and (out / "truth.json")
            .exists()):
        generate(sc, out)
    truth = build_truth(Scene.compile(sc))  # cheap: re-derived each run, so a truth fix needs no re-render
    if (out / "truth.json").read_text() != truth.to_json():
        truth.write(out / "truth.json")
    return out


def synth_site_config(truth: dict[str, Any], clip: Path) -> SiteConfig:
    """The scenario camera, calibrated from its pose, every incident type on (parking in the kerb zone only)."""
    cam = truth["camera"]
    hfov = math.degrees(2 * math.atan(cam["width"] / 2 / cam["fx"]))
    zones = [{"name": z["name"], "ground": [[p[0], p[1]] for p in z["latlon"]]} for z in truth["zones"]]
    kerb = next(z["name"] for z in truth["zones"] if "kerb" in z["name"] or "no_parking" in z["name"])
    incidents: dict[str, Any] = {t: {"dwell_s": d} for t, d in SYNTH_DWELL_S.items()}
    incidents["illegal_parking"]["zones"] = [kerb]
    return parse_site_config({
        "site_id": "bench", "gateway_id": "gw-bench",
        "detector": {"type": "onnx", "model": str(DEMO_MODEL)},
        "cameras": [{
            "id": "cam", "source": {"type": "file", "path": str(clip)}, "analysis_fps": ANALYSIS_FPS,
            "calibration": {"type": "pinhole", "hfov_deg": hfov, "height_m": cam["height_m"],
                            "tilt_deg": cam["tilt_deg"], "heading_deg": cam["heading_deg"] % 360,
                            "lat": cam["lat"], "lon": cam["lon"]},
            "zones": zones, "incidents": incidents,
        }],
    }, "benchmark")


def synth_clip(clip_dir: Path, detector: Detector, work: Path) -> tuple[ClipResult, list[dict[str, Any]]]:
    truth = json.loads((clip_dir / "truth.json").read_text())
    cfg = synth_site_config(truth, clip_dir / "video.mp4")
    work.mkdir(parents=True, exist_ok=True)
    (work / "incidents.jsonl").unlink(missing_ok=True)
    report = analyze_clip(clip_dir / "video.mp4", cfg, "cam", work, detector=detector, progress=False,
                          write_video=False, start_wall=T0)
    lat0, lon0 = truth["camera"]["lat"], truth["camera"]["lon"]
    name = clip_dir.name
    truths = [TruthIncident(i["type"], i["start_s"], i["east"], i["north"], name, i.get("owner_left_s"))
              for i in truth["incidents"]]
    reports: list[Reported] = []
    raw: list[dict[str, Any]] = []
    for e in started(report.events):
        x = y = math.inf  # no location: can never match
        if e.location is not None:
            x, y = wgs84_to_enu(e.location.lat, e.location.lon, lat0, lon0)
        reports.append(Reported(e.type, offset(e.started_at), offset(e.observed_at), float(x), float(y), name))
        raw.append({"type": e.type, "started_s": round(offset(e.started_at), 2),
                    "reported_s": round(offset(e.observed_at), 2),
                    "east_north": None if e.location is None else [round(float(x), 2), round(float(y), 2)]})
    return match_clip(truths, reports, SYNTH_RADIUS_M, START_TOLERANCE_S, SYNTH_DWELL_S), raw


def score_rows(scores: dict[str, TypeScore]) -> list[dict[str, Any]]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 3)
    return [{"type": s.type, "tp": s.tp, "fp": s.fp, "fn": s.fn, "precision": r(s.precision), "recall": r(s.recall),
             "delay_median_s": r(s.delay_median_s), "delay_max_s": r(s.delay_max_s),
             "start_error_max_s": r(s.start_error_max_s)} for s in scores.values()]


def synth_goals(scores: dict[str, TypeScore]) -> list[Goal]:
    out: list[Goal] = []
    for s in scores.values():
        p, rc, d = s.precision, s.recall, s.delay_max_s
        out.append(goal(f"synthetic_{s.type}_precision", p, PRECISION_TARGET, "fraction",
                        p is not None and p >= PRECISION_TARGET))
        out.append(goal(f"synthetic_{s.type}_recall", rc, RECALL_TARGET, "fraction",
                        rc is not None and rc >= RECALL_TARGET))
        out.append(goal(f"synthetic_{s.type}_delay_max", d, DELAY_TARGET_S, "s after truth start + dwell",
                        d is not None and d <= DELAY_TARGET_S))
    return out


def run_suite(scenarios: list[Path], cache: Path, make_detector: Callable[[Path], Detector],
              advance: Callable[[str], None]) -> tuple[dict[str, TypeScore], list[dict[str, Any]]]:
    results: list[ClipResult] = []
    per_clip: list[dict[str, Any]] = []
    for sc in scenarios:
        advance(f"render {sc.stem}")
        clip_dir = render(sc, cache / "clips")
        advance(f"analyse {sc.stem}")
        res, raw = synth_clip(clip_dir, make_detector(clip_dir), cache / "runs" / sc.stem)
        results.append(res)
        per_clip.append({"scenario": sc.stem, "reported": raw,
                         "matched": [{"type": m.truth.type, "distance_m": round(m.distance, 2),
                                      "delay_s": round(m.delay_s, 2), "start_error_s": round(m.start_error_s, 2)}
                                     for m in res.matches],
                         "missed": [asdict(t) for t in res.missed],
                         "false_positives": [asdict(r) for r in res.false_positives]})
    return score(results, TYPES), per_clip


# --- real clips -----------------------------------------------------------------------------------------------
def real_config(shared: Path, clip: str, incidents: dict[str, Any], zones: list[dict[str, Any]] | None = None,
                ) -> SiteConfig:
    """YOLOX-Nano, the clip, 2 analysis fps, only zones and `dwell_s` per incident type."""
    cam: dict[str, Any] = {"id": "c", "analysis_fps": ANALYSIS_FPS,
                           "source": {"type": "file", "path": str(shared / clip)}, "incidents": incidents}
    if zones:
        cam["zones"] = zones
    return parse_site_config({
        "site_id": "s", "gateway_id": "g", "cameras": [cam],
        "detector": {"type": "onnx", "model": str(shared / "models" / "yolox_nano.onnx"),
                     "manifest": str(YOLOX_MANIFEST), "conf": 0.3},
    }, clip)


def run_real(cfg: SiteConfig, work: Path, detector: Detector) -> list[IncidentEvent]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "incidents.jsonl").unlink(missing_ok=True)
    cam = cfg.cameras[0]
    report = analyze_clip(Path(cam.source.path), cfg, cam.id, work, detector=detector,  # type: ignore[union-attr]
                          progress=False, write_video=False, start_wall=T0)
    return started(report.events)


def describe(events: list[IncidentEvent]) -> list[dict[str, Any]]:
    return [{"type": e.type, "started_s": round(offset(e.started_at), 2), "reported_s": round(offset(e.observed_at), 2),
             "box": [round(v) for v in (e.box.x1, e.box.y1, e.box.x2, e.box.y2)]} for e in events]


def aboda_check(events: list[IncidentEvent], bag: list[float]) -> tuple[float | None, bool]:
    """(seconds after the owner left of the first littering report at the bag, met)."""
    bx, by = (bag[0] + bag[2]) / 2, (bag[1] + bag[3]) / 2
    at_bag = [e for e in events if e.type == "littering"
              and abs((e.box.x1 + e.box.x2) / 2 - bx) <= ABODA_PX and abs((e.box.y1 + e.box.y2) / 2 - by) <= ABODA_PX]
    if not at_bag:
        return None, False
    after = min(offset(e.observed_at) for e in at_bag) - OWNER_LEAVES_S
    return after, 0.0 < after <= ABODA_WITHIN_S


def run_real_clips(shared: Path, cache: Path, advance: Callable[[str], None]) -> tuple[list[Goal], dict[str, Any]]:
    truth = json.loads((shared / "events.json").read_text())
    yolox = OnnxDetector.from_path(shared / "models" / "yolox_nano.onnx", YOLOX_MANIFEST, conf_threshold=0.3)
    goals: list[Goal] = []
    detail: dict[str, Any] = {}
    whole = {"illegal_parking": {"dwell_s": 3.0}, "littering": {"dwell_s": 2.0}, "exposed_garbage": {"dwell_s": 5.0}}

    advance("real ABODA")
    ev = run_real(real_config(shared, ABODA, {"littering": {"dwell_s": 3.0}}), cache / "real" / "aboda", yolox)
    after, met = aboda_check(ev, truth[ABODA]["events"][0]["object_bbox_xyxy_approx"])
    goals.append(goal("real_aboda_littering_s_after_owner_leaves", after, ABODA_WITHIN_S, "s (within 40 px)", met))
    others = [e for e in ev if e.type != "littering"]
    detail["aboda"] = {"started": describe(ev), "other_types": len(others)}

    advance("real Arlington")
    fixture = yaml.safe_load((FIXTURES / "arlington.yaml").read_text().replace("${SHARED}", str(shared)))
    ev = run_real(real_config(shared, ARLINGTON, whole), cache / "real" / "arlington", yolox)
    kerb = truth[ARLINGTON]["events"][0]["stationary_vehicle_bboxes_xyxy_approx"]
    parking = [(e.box.x1, e.box.y1, e.box.x2, e.box.y2) for e in ev if e.type == "illegal_parking"]
    found = sum(max((box_iou(tuple(k), b) for b in parking), default=0.0) >= 0.3 for k in kerb)  # type: ignore[arg-type]
    non_parking = [e for e in ev if e.type != "illegal_parking"]
    goals.append(goal("real_arlington_kerb_cars_found", found, len(kerb), "cars (IoU >= 0.3)", found == len(kerb)))
    goals.append(goal("real_arlington_other_incidents", len(non_parking), 0, "incidents", not non_parking))
    # The fixture's kerb zone as a second, zoned run: parking only in the zone.
    zoned = {**whole, "illegal_parking": {"dwell_s": 3.0, "zones": ["left_kerb"]}}
    ev_z = run_real(real_config(shared, ARLINGTON, zoned, fixture["cameras"][0]["zones"]),
                    cache / "real" / "arlington-zoned", yolox)
    detail["arlington"] = {"whole_frame": describe(ev), "kerb_zone": describe(ev_z)}
    non_parking_z = [e for e in ev_z if e.type != "illegal_parking"]
    goals.append(goal("real_arlington_zoned_other_incidents", len(non_parking_z), 0, "incidents", not non_parking_z))

    for clip in NEGATIVES:
        stem = Path(clip).stem
        advance(f"real {stem[:24]}")
        ev = run_real(real_config(shared, clip, whole), cache / "real" / stem, yolox)
        goals.append(goal(f"real_negative_{stem}_incidents", len(ev), 0, "incidents", not ev))
        detail[stem] = describe(ev)
    return goals, detail


# --- stage cost -----------------------------------------------------------------------------------------------
def run_cost(shared: Path, advance: Callable[[str], None]) -> tuple[Goal, dict[str, Any]]:
    cv2.setNumThreads(1)
    det = OnnxDetector.from_path(shared / "models" / "yolox_nano.onnx", YOLOX_MANIFEST, threads=1)
    all_det: list[float] = []
    all_stage: list[float] = []
    clips: list[dict[str, Any]] = []
    for clip in sorted((shared / "videos").iterdir()):
        advance(f"cost {clip.stem[:24]}")
        frames = sampled_frames(clip, (640, 360))
        for _, frame in frames[:3]:
            det.detect(frame)
        run, d, s = time_clip(clip.name, frames, det)
        clips.append(asdict(run))
        all_det += d
        all_stage += s
    ratio = statistics.median(all_stage) / statistics.median(all_det)
    return goal("scene_change_cost_ratio", ratio, COST_TARGET, "x detector", ratio <= COST_TARGET), {
        "clips": clips, "detect_ms_median": round(statistics.median(all_det), 2),
        "stage_ms_median": round(statistics.median(all_stage), 2), "threads": 1, "frame_size": [640, 360],
        "loadavg": [round(x, 2) for x in os.getloadavg()]}


# --- output ---------------------------------------------------------------------------------------------------
def print_scores(console: Console, title: str, scores: dict[str, TypeScore]) -> None:
    table = Table(title=title)
    for col in ("type", "tp", "fp", "fn", "precision", "recall", "delay med (s)", "delay max (s)",
                "start err max (s)"):
        table.add_column(col, justify="left" if col == "type" else "right")

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"
    for s in scores.values():
        table.add_row(s.type, str(s.tp), str(s.fp), str(s.fn), f(s.precision), f(s.recall), f(s.delay_median_s),
                      f(s.delay_max_s), f(s.start_error_max_s))
    console.print(table)


def print_goals(console: Console, goals: list[Goal]) -> None:
    table = Table(title="goals")
    for col in ("goal", "value", "target", "unit", "met"):
        table.add_column(col)
    for g in goals:
        table.add_row(g["name"], str(g["value"]), str(g["target"]), g["unit"],
                      "[green]met" if g["met"] else "[red]NOT met")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--cache", type=Path, default=REPO / "out" / "incidents-bench",
                        help="rendered clips (reused while the scenario is unchanged) and analysis outputs")
    parser.add_argument("--only", nargs="*", help="scenario names (file stems) to run; default: the whole suite")
    parser.add_argument("--demo-model", action="store_true", help="also run the suite with the demo ONNX model")
    parser.add_argument("--skip-real", action="store_true", help="synthetic suite only (no shared data)")
    args = parser.parse_args(argv)
    console = Console(width=max(120, Console().width))
    scenarios = sorted(p for p in SUITE.glob("*.yaml") if not args.only or p.stem in args.only)
    shared = shared_real_dir()
    real = not args.skip_real and (shared / "events.json").exists()
    steps = 2 * len(scenarios) * (2 if args.demo_model else 1) + (
        (2 + len(NEGATIVES)) + len(list((shared / "videos").iterdir())) if real else 0)
    started_at = time.monotonic()
    result: dict[str, Any] = {"analysis_fps": ANALYSIS_FPS, "synthetic_dwell_s": SYNTH_DWELL_S,
                              "radius_m": SYNTH_RADIUS_M, "start_tolerance_s": START_TOLERANCE_S,
                              "hidden_classes": sorted(HIDDEN_CLASSES)}
    goals: list[Goal] = []
    with Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("incidents", total=steps)

        def advance(what: str) -> None:
            progress.update(task, description=what, advance=1)

        stride = 5  # every scenario is 10 fps; 2 analysis fps keeps every 5th frame
        scores, per_clip = run_suite(scenarios, args.cache, lambda d: StridedLabelDetector(d / "labels", stride),
                                     advance)
        goals += synth_goals(scores)
        result["synthetic"] = {"detector": "labels without litter", "types": score_rows(scores), "clips": per_clip}
        demo_scores: dict[str, TypeScore] | None = None
        if args.demo_model:
            def demo(_: Path) -> Detector:
                return OnnxDetector.from_path(DEMO_MODEL, conf_threshold=0.3,
                                              class_filter=["car", "person", "stall", "wire"])
            demo_scores, demo_clips = run_suite(scenarios, args.cache, demo, advance)
            result["synthetic_demo_model"] = {"detector": "demo ONNX model, litter filtered out",
                                              "types": score_rows(demo_scores), "clips": demo_clips}
        if real:
            real_goals, result["real"] = run_real_clips(shared, args.cache, advance)
            goals += real_goals
            cost_goal, result["cost"] = run_cost(shared, advance)
            goals.append(cost_goal)
    print_scores(console, "synthetic suite (labels, litter hidden), 2 analysis fps", scores)
    if demo_scores is not None:
        print_scores(console, "synthetic suite (demo ONNX model, litter filtered), 2 analysis fps", demo_scores)
    if "cost" in result:
        c = result["cost"]
        console.print(f"scene-change stage {c['stage_ms_median']} ms vs detector {c['detect_ms_median']} ms (median)")
    print_goals(console, goals)
    result["goals"] = goals
    result["seconds"] = round(time.monotonic() - started_at, 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
