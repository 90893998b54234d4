"""The synthetic scenario suite as a measuring instrument: render, analyse with a detector, match to truth, score.

The suite (`synth/scenarios/suite/*.yaml`, plus seeded variants from `synth/suite_family.py`) is a set of short
clips from calibrated cameras whose truth says which incidents happen, where and when. A detector runs through
the edge's own offline pipeline (`analyze_clip`: tracker, rules with the suite's short dwells, scene-change stage,
geotagger) at `ANALYSIS_FPS`; every `started` report is matched to truth (`synth.incident_match`: same type,
within `RADIUS_M` on the ground, not started before truth start - `START_TOLERANCE_S`), giving precision, recall
and delay per incident type.

Used by `gridwatch models eval` (incident-level comparison of a candidate and the deployed model) and by
`benchmarks/incidents.py`. Rendered clips are cached by scenario content, so a second run only analyses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gridwatch.synth
from gridwatch.app.demo import MODEL as DEMO_MODEL
from gridwatch.calibration.geo import wgs84_to_enu
from gridwatch.edge.analyze import analyze_clip
from gridwatch.edge.config import SiteConfig, parse_site_config
from gridwatch.errors import GridwatchError
from gridwatch.models.base import Detector
from gridwatch.synth.generate import generate
from gridwatch.synth.incident_match import ClipResult, Reported, TruthIncident, TypeScore, match_clip, score
from gridwatch.synth.scenario import Scenario, load_scenario
from gridwatch.synth.scene import Scene
from gridwatch.synth.suite_family import POSITIVE_ORDER, suite_variants
from gridwatch.synth.truth import build_truth
from gridwatch.wire.events import IncidentEvent

SUITE_DIR = Path(gridwatch.synth.__file__).resolve().parent / "scenarios" / "suite"
ANALYSIS_FPS = 2.0
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TYPES = ("illegal_parking", "littering", "exposed_garbage", "street_vendor", "fallen_wire")
#: Dwell per type on the suite: short, so 20-60 s clips show every type. Delay is measured after it.
DWELL_S = {"illegal_parking": 5.0, "littering": 2.0, "exposed_garbage": 5.0, "street_vendor": 5.0, "fallen_wire": 3.0}
RADIUS_M = 3.0
START_TOLERANCE_S = 2.5
SUITE_SEED = 2026

Advance = Callable[[str], None]


class SuiteError(GridwatchError):
    """The scenario suite cannot be run as asked (missing files, a bad subset)."""


def suite_templates(folder: Path = SUITE_DIR) -> dict[str, Scenario]:
    """The fixed suite, by file stem. Raise SuiteError when the folder holds none."""
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        raise SuiteError(f"no scenarios in {folder}: the scenario suite is missing from this installation")
    return {p.stem: load_scenario(p) for p in paths}


def interleaved(templates: dict[str, Scenario]) -> list[Scenario]:
    """Positives (one type each first, `POSITIVE_ORDER`) and negatives alternately, so any prefix of the list
    holds both kinds and the first ten cover every incident type."""
    first = [templates[n] for n in POSITIVE_ORDER if n in templates]
    positives = first + [s for n, s in sorted(templates.items()) if not n.startswith("neg_") and s not in first]
    negatives = [s for n, s in sorted(templates.items()) if n.startswith("neg_")]
    out: list[Scenario] = []
    for i in range(max(len(positives), len(negatives))):
        out += [pool[i] for pool in (positives, negatives) if i < len(pool)]
    return out


def select_scenarios(
    count: int | None = None, variants: int = 0, names: Sequence[str] = (), folder: Path = SUITE_DIR
) -> list[Scenario]:
    """The fixed suite (interleaved) plus `variants` seeded variants; then `names` (if any) or the first `count`."""
    templates = suite_templates(folder)
    scenarios = interleaved(templates) + suite_variants(templates, variants, SUITE_SEED)
    if names:
        unknown = sorted(set(names) - {s.name for s in scenarios})
        if unknown:
            raise SuiteError(f"unknown scenario(s) {unknown}; the suite has {sorted(s.name for s in scenarios)}")
        return [s for s in scenarios if s.name in names]
    if count is not None and count < 0:
        raise SuiteError(f"--scenarios must be 0 or more, got {count}")
    return scenarios if count is None else scenarios[:count]


def render(sc: Scenario, cache: Path) -> Path:
    """Render `sc` into cache/<name>/ unless the same scenario is already there; return that folder."""
    out = cache / sc.name
    stamp = out / "scenario.json"
    same = stamp.exists() and stamp.read_text() == sc.model_dump_json(indent=2) + "\n"
    if not (same and (out / "truth.json").exists() and (out / "video.mp4").exists()):
        generate(sc, out)
    truth = build_truth(Scene.compile(sc))  # cheap: re-derived each run, so a truth fix needs no re-render
    if (out / "truth.json").read_text() != truth.to_json():
        truth.write(out / "truth.json")
    return out


def site_config(truth: dict[str, Any], clip: Path) -> SiteConfig:
    """The scenario's camera, calibrated from its pose, every suite type on (parking in the kerb zone only).
    The detector named here is never loaded: the caller hands `analyze_clip` its own."""
    cam = truth["camera"]
    hfov = math.degrees(2 * math.atan(cam["width"] / 2 / cam["fx"]))
    zones = [{"name": z["name"], "ground": [[p[0], p[1]] for p in z["latlon"]]} for z in truth["zones"]]
    kerb = next(z["name"] for z in truth["zones"] if "kerb" in z["name"] or "no_parking" in z["name"])
    incidents: dict[str, Any] = {t: {"dwell_s": d} for t, d in DWELL_S.items()}
    incidents["illegal_parking"]["zones"] = [kerb]
    return parse_site_config(
        {
            "site_id": "suite",
            "gateway_id": "gw-suite",
            "detector": {"type": "onnx", "model": str(DEMO_MODEL)},
            "cameras": [
                {
                    "id": "cam",
                    "source": {"type": "file", "path": str(clip)},
                    "analysis_fps": ANALYSIS_FPS,
                    "calibration": {
                        "type": "pinhole",
                        "hfov_deg": hfov,
                        "height_m": cam["height_m"],
                        "tilt_deg": cam["tilt_deg"],
                        "heading_deg": cam["heading_deg"] % 360,
                        "lat": cam["lat"],
                        "lon": cam["lon"],
                    },
                    "zones": zones,
                    "incidents": incidents,
                }
            ],
        },
        "scenario suite",
    )


def offset(when: datetime) -> float:
    return (when - T0).total_seconds()


def _reported(events: list[IncidentEvent], lat0: float, lon0: float, clip: str) -> list[Reported]:
    out = []
    for e in events:
        x = y = math.inf  # no location: can never match
        if e.location is not None:
            x, y = wgs84_to_enu(e.location.lat, e.location.lon, lat0, lon0)
        out.append(Reported(e.type, offset(e.started_at), offset(e.observed_at), float(x), float(y), clip))
    return out


def analyse(clip_dir: Path, detector: Detector, work: Path) -> ClipResult:
    """Run the edge pipeline with `detector` on one rendered scenario and match its reports to the truth."""
    truth = json.loads((clip_dir / "truth.json").read_text())
    work.mkdir(parents=True, exist_ok=True)
    (work / "incidents.jsonl").unlink(missing_ok=True)
    report = analyze_clip(
        clip_dir / "video.mp4",
        site_config(truth, clip_dir / "video.mp4"),
        "cam",
        work,
        detector=detector,
        progress=False,
        write_video=False,
        start_wall=T0,
    )
    name = clip_dir.name
    truths = [
        TruthIncident(i["type"], i["start_s"], i["east"], i["north"], name, dwell_from_s=i.get("owner_left_s"))
        for i in truth["incidents"]
    ]
    started = [e for e in report.events if e.phase == "started"]
    reports = _reported(started, truth["camera"]["lat"], truth["camera"]["lon"], name)
    return match_clip(truths, reports, RADIUS_M, START_TOLERANCE_S, DWELL_S)


def clip_detail(name: str, res: ClipResult) -> dict[str, Any]:
    """One scenario's matches, misses and false positives, for JSON."""
    return {
        "scenario": name,
        "reported": [
            {
                "type": r.type,
                "started_s": round(r.started_s, 2),
                "reported_s": round(r.reported_s, 2),
                "east_north": None if math.isinf(r.x) else [round(r.x, 2), round(r.y, 2)],
            }
            for r in [m.reported for m in res.matches] + res.false_positives
        ],
        "matched": [
            {
                "type": m.truth.type,
                "distance_m": round(m.distance, 2),
                "delay_s": round(m.delay_s, 2),
                "start_error_s": round(m.start_error_s, 2),
            }
            for m in res.matches
        ],
        "missed": [asdict(t) for t in res.missed],
        "false_positives": [asdict(r) for r in res.false_positives],
    }


@dataclass(frozen=True)
class SuiteRun:
    """One detector over the selected scenarios: per-type scores and each scenario's detail."""

    scores: dict[str, TypeScore]
    clips: list[dict[str, Any]]


def run_suite(
    scenarios: Sequence[Scenario],
    cache: Path,
    make_detector: Callable[[Path], Detector],
    advance: Advance,
    label: str = "",
) -> SuiteRun:
    """Render (cached) and analyse every scenario with a fresh detector from `make_detector(clip_dir)`.
    `advance` is called twice per scenario (before rendering, before analysing); `label` names the run's
    analysis folder under `cache/runs`."""
    results: list[ClipResult] = []
    clips: list[dict[str, Any]] = []
    for sc in scenarios:
        advance(f"render {sc.name}")
        clip_dir = render(sc, cache / "clips")
        advance(f"analyse {sc.name}" + (f" ({label})" if label else ""))
        res = analyse(clip_dir, make_detector(clip_dir), cache / "runs" / (label or "run") / sc.name)
        results.append(res)
        clips.append(clip_detail(sc.name, res))
    return SuiteRun(score(results, TYPES), clips)


def score_rows(scores: dict[str, TypeScore]) -> list[dict[str, Any]]:
    """Per-type counts, precision, recall and delays, rounded, for JSON."""

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 3)

    return [
        {
            "type": s.type,
            "tp": s.tp,
            "fp": s.fp,
            "fn": s.fn,
            "precision": r(s.precision),
            "recall": r(s.recall),
            "delay_median_s": r(s.delay_median_s),
            "delay_max_s": r(s.delay_max_s),
            "start_error_max_s": r(s.start_error_max_s),
        }
        for s in scores.values()
    ]
