"""Incident accuracy and cost: the synthetic suite, the real clips and the scene-change stage's cost, at 2 fps.

    python benchmarks/incidents.py --json out/incidents.json [--suite-size N] [--composite-size M] [--demo-model]
                                   [--only NAME ...] [--cache DIR]

1. **Synthetic suite** (synth/scenarios/suite/*.yaml plus `--suite-size` seeded variants of them,
   synth/suite_family.py; rendered once into `--cache`): every scenario is analysed
   by `analyze_clip` at 2 analysis fps with every incident type on, the detector being the scenario's own labels
   with `litter` hidden (benchmarks/synth_labels.py), so dropped and piled things come only from the
   scene-change stage. Reports are matched to truth.json (benchmarks/incident_match.py: same type, within
   `SYNTH_RADIUS_M` on the ground, started no earlier than truth start - `START_TOLERANCE_S`). Delay counts from
   the truth's start plus the dwell; for littering from when the owner was `leave_distance_m` away plus the
   dwell (`owner_left_s` in truth.json: the dwell is the time the object lies unattended). `--demo-model`
   repeats the suite with the shipped demo ONNX model (litter filtered out by class_filter); its numbers are
   printed and stored but are not goals.
2. **Composite family** (synth/composite_family.py: `--composite-size` scenarios of synthetic bags, boxes, piles
   and wires pasted onto real empty footage from ../shared/data/real, synth/composite.py): analysed like the real
   clips (YOLOX-Nano, uncalibrated, every type but street_vendor over the whole frame with the suite's dwells) and
   matched in frame pixels (each truth's own radius: max(40 px, half its box diagonal)); littering's delay counts
   from the truth's `owner_left_s`, as in the suite. Its goals are its own,
   with the same targets; without the shared data they are reported as not run (never met).
3. **Real clips** (../shared/data/real, YOLOX-Nano, only zones and `dwell_s` set, 2 analysis fps): ABODA's bag
   as littering within 10 s after the owner leaves (19.5 s) and within 40 px of the annotated bag; Arlington's
   kerb cars as illegal parking and nothing else (littering, exposed garbage on); the negative clips report
   nothing (illegal parking, littering, exposed garbage over the whole frame).
4. **Stage cost**: `SceneChangeStage.update` vs `OnnxDetector.detect` on the same 640x360 real frames, one
   thread each (benchmarks/scene_change.py's functions).

Writes `{"goals": [{"name", "value", "target", "unit", "met"}], "synthetic": ..., "composite": ..., "real": ...,
"cost": ...}`.
Goals that are not met are reported with their number; nothing here is tuned to pass.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
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

from scene_change import sampled_frames, time_clip  # noqa: E402
from synth_labels import HIDDEN_CLASSES, StridedLabelDetector  # noqa: E402

from gridwatch.app.scenario_suite import (  # noqa: E402
    ANALYSIS_FPS,
    START_TOLERANCE_S,
    SUITE_SEED,
    T0,
    TYPES,
    offset,
    run_suite,
    score_rows,
    suite_templates,
)
from gridwatch.app.scenario_suite import DWELL_S as SYNTH_DWELL_S  # noqa: E402
from gridwatch.app.scenario_suite import RADIUS_M as SYNTH_RADIUS_M  # noqa: E402
from gridwatch.edge.analyze import analyze_clip  # noqa: E402
from gridwatch.edge.config import SiteConfig, parse_site_config  # noqa: E402
from gridwatch.models.base import Detector  # noqa: E402
from gridwatch.models.onnx_backend import OnnxDetector  # noqa: E402
from gridwatch.pipelines.lifecycle import box_iou  # noqa: E402
from gridwatch.synth.composite import CompositeScenario, generate_composite  # noqa: E402
from gridwatch.synth.composite import truth as composite_truth  # noqa: E402
from gridwatch.synth.composite_family import composite_suite  # noqa: E402
from gridwatch.synth.incident_match import ClipResult, Reported, TruthIncident, TypeScore, match_clip, score  # noqa: E402
from gridwatch.synth.suite_family import suite_variants  # noqa: E402
from gridwatch.wire.events import IncidentEvent  # noqa: E402

YOLOX_MANIFEST = REPO / "models" / "manifests" / "yolox_nano_coco80.json"
DEMO_MODEL = REPO / "models" / "demo" / "gridwatch-demo-yolo11n.onnx"
FIXTURES = REPO / "tests" / "fixtures"
COMPOSITE_TYPES = ("littering", "exposed_garbage", "fallen_wire")  # the types composite scenarios stage
COMPOSITE_SEED = 2026
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


# --- synthetic suite ------------------------------------------------------------------------------------------
def synth_goals(scores: dict[str, TypeScore], family: str = "synthetic",
                types: tuple[str, ...] = TYPES) -> list[Goal]:
    out: list[Goal] = []
    for s in scores.values():
        if s.type not in types:
            continue
        p, rc, d = s.precision, s.recall, s.delay_max_s
        out.append(goal(f"{family}_{s.type}_precision", p, PRECISION_TARGET, "fraction",
                        p is not None and p >= PRECISION_TARGET))
        out.append(goal(f"{family}_{s.type}_recall", rc, RECALL_TARGET, "fraction",
                        rc is not None and rc >= RECALL_TARGET))
        out.append(goal(f"{family}_{s.type}_delay_max", d, DELAY_TARGET_S, "s after truth start + dwell",
                        d is not None and d <= DELAY_TARGET_S))
    return out


def not_run_goals(family: str, types: tuple[str, ...], why: str) -> list[Goal]:
    """The family's goals when it could not run: no value, never met, the reason in the unit."""
    return [goal(f"{family}_{t}_{m}", None, target, f"NOT RUN: {why}", False) for t in types
            for m, target in (("precision", PRECISION_TARGET), ("recall", RECALL_TARGET),
                              ("delay_max", DELAY_TARGET_S))]


# --- composite family (synthetic objects on real footage) ------------------------------------------------------
def render_composite(sc: CompositeScenario, shared: Path, cache: Path) -> Path:
    out = cache / sc.name
    stamp = out / "scenario.json"
    if not (stamp.exists() and stamp.read_text() == sc.model_dump_json(indent=2) + "\n" and (out / "truth.json")
            .exists()):
        generate_composite(sc, shared, out)
    fresh = json.dumps(composite_truth(sc), indent=2) + "\n"  # cheap: a truth fix needs no re-render
    if (out / "truth.json").read_text() != fresh:
        (out / "truth.json").write_text(fresh, encoding="utf-8")
    return out


def composite_config(shared: Path, clip: Path) -> SiteConfig:
    """YOLOX-Nano on the composite clip, uncalibrated, over the whole frame with the suite's dwells: every type
    but street_vendor, whose default classes (stall, cart) YOLOX-Nano does not have (the config refuses it)."""
    cam: dict[str, Any] = {"id": "c", "analysis_fps": ANALYSIS_FPS, "source": {"type": "file", "path": str(clip)},
                           "incidents": {t: {"dwell_s": d} for t, d in SYNTH_DWELL_S.items()
                                         if t != "street_vendor"}}
    return parse_site_config({
        "site_id": "s", "gateway_id": "g", "cameras": [cam],
        "detector": {"type": "onnx", "model": str(shared / "models" / "yolox_nano.onnx"),
                     "manifest": str(YOLOX_MANIFEST), "conf": 0.3},
    }, clip.name)


def composite_clip(clip_dir: Path, shared: Path, detector: Detector, work: Path,
                   ) -> tuple[ClipResult, list[dict[str, Any]]]:
    truth = json.loads((clip_dir / "truth.json").read_text())
    events = run_real(composite_config(shared, clip_dir / "video.mp4"), work, detector)
    name = clip_dir.name
    truths = [TruthIncident(i["type"], i["start_s"], i["pixel"][0], i["pixel"][1], name, radius=i["radius_px"],
                            dwell_from_s=i.get("owner_left_s")) for i in truth["incidents"]]
    reports = [Reported(e.type, offset(e.started_at), offset(e.observed_at), (e.box.x1 + e.box.x2) / 2,
                        (e.box.y1 + e.box.y2) / 2, name) for e in events]
    return match_clip(truths, reports, 0.0, START_TOLERANCE_S, SYNTH_DWELL_S), describe(events)


def run_composite(scenarios: list[CompositeScenario], shared: Path, cache: Path, advance: Callable[[str], None],
                  ) -> tuple[dict[str, TypeScore], list[dict[str, Any]]]:
    yolox = OnnxDetector.from_path(shared / "models" / "yolox_nano.onnx", YOLOX_MANIFEST, conf_threshold=0.3)
    results: list[ClipResult] = []
    per_clip: list[dict[str, Any]] = []
    for sc in scenarios:
        advance(f"render {sc.name}")
        clip_dir = render_composite(sc, shared, cache / "composite")
        advance(f"analyse {sc.name}")
        res, raw = composite_clip(clip_dir, shared, yolox, cache / "composite-runs" / sc.name)
        results.append(res)
        per_clip.append({"scenario": sc.name, "background": sc.background, "reported": raw,
                         "matched": [{"type": m.truth.type, "distance_px": round(m.distance, 1),
                                      "delay_s": round(m.delay_s, 2)} for m in res.matches],
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
                          progress=False, write_video=False, start_wall=T0, record=work / "observations.jsonl")
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
    parser.add_argument("--skip-real", action="store_true",
                        help="synthetic suite only: no real clips, no stage cost, composite family not run")
    parser.add_argument("--skip-synthetic", action="store_true", help="no synthetic suite (composite, real only)")
    parser.add_argument("--suite-size", type=int, default=40,
                        help="seeded variants added to the fixed synthetic suite (synth/suite_family.py)")
    parser.add_argument("--composite-size", type=int, default=30,
                        help="composite scenarios on real footage (synth/composite_family.py); 0 = not run")
    args = parser.parse_args(argv)
    console = Console(width=max(120, Console().width))
    templates = suite_templates()
    scenarios = list(templates.values()) + suite_variants(templates, args.suite_size, SUITE_SEED)
    composites = composite_suite(args.composite_size, COMPOSITE_SEED)
    if args.skip_synthetic:
        scenarios = []
    if args.only:
        scenarios = [s for s in scenarios if s.name in args.only]
        composites = [c for c in composites if c.name in args.only]
    shared = shared_real_dir()
    have_shared = (shared / "events.json").exists() and (shared / "models" / "yolox_nano.onnx").exists()
    real = not args.skip_real and have_shared
    composite_why = ("--skip-real given" if args.skip_real else f"shared data not found at {shared}"
                     if not have_shared else "--composite-size 0" if not composites else "")
    steps = 2 * len(scenarios) * (2 if args.demo_model else 1) + (2 * len(composites) if not composite_why else 0) + (
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
        labels_run = run_suite(scenarios, args.cache, lambda d: StridedLabelDetector(d / "labels", stride),
                               advance, "labels")
        scores, per_clip = labels_run.scores, labels_run.clips
        if scenarios:
            goals += synth_goals(scores)
            result["synthetic"] = {"detector": "labels without litter", "scenarios": len(scenarios),
                                   "types": score_rows(scores), "clips": per_clip}
        else:
            result["synthetic"] = {"run": False, "why": "--skip-synthetic (or --only matched none)"}
        demo_scores: dict[str, TypeScore] | None = None
        if args.demo_model:
            def demo(_: Path) -> Detector:
                return OnnxDetector.from_path(DEMO_MODEL, conf_threshold=0.3,
                                              class_filter=["car", "person", "stall", "wire"])
            demo_run = run_suite(scenarios, args.cache, demo, advance, "demo-model")
            demo_scores, demo_clips = demo_run.scores, demo_run.clips
            result["synthetic_demo_model"] = {"detector": "demo ONNX model, litter filtered out",
                                              "types": score_rows(demo_scores), "clips": demo_clips}
        comp_scores: dict[str, TypeScore] | None = None
        if composite_why:
            goals += not_run_goals("composite", COMPOSITE_TYPES, composite_why)
            result["composite"] = {"run": False, "why": composite_why}
        else:
            comp_scores, comp_clips = run_composite(composites, shared, args.cache, advance)
            goals += synth_goals(comp_scores, "composite", COMPOSITE_TYPES)
            result["composite"] = {"run": True, "detector": "YOLOX-Nano (real) + scene-change regions",
                                   "scenarios": len(composites), "types": score_rows(comp_scores),
                                   "clips": comp_clips}
        if real:
            real_goals, result["real"] = run_real_clips(shared, args.cache, advance)
            goals += real_goals
            cost_goal, result["cost"] = run_cost(shared, advance)
            goals.append(cost_goal)
    n_pos = sum(len(c["matched"]) + len(c["missed"]) for c in per_clip)
    if scenarios:
        print_scores(console, f"synthetic suite ({len(scenarios)} scenarios, {n_pos} truth incidents; labels, "
                              "litter hidden), 2 analysis fps", scores)
    if comp_scores is not None:
        print_scores(console, f"composite family ({len(composites)} scenarios on real footage; YOLOX-Nano), "
                              "2 analysis fps", comp_scores)
    else:
        console.print(f"[red]composite family NOT RUN: {composite_why}[/red]")
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
