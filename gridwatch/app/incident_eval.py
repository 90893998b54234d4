"""Incident-level part of `gridwatch models eval`: the scenario suite with the candidate and the deployed model.

Box-level AP says how well a model draws boxes; what a city sees is incidents. So both models run the same
scenarios (`scenario_suite`) through the edge pipeline at the same confidence threshold, and each incident type
gets precision and recall for both, side by side, with a plain verdict. Both runs see the same truth, so the
verdict compares counts, with no margin to pick:

* ``better``: finds more of the true incidents without more false alarms, or as many with fewer false alarms;
* ``worse``: the reverse;
* ``unchanged``: the same number found and the same number of false alarms;
* ``mixed``: finds more but also raises more false alarms, or fewer of both (read the two columns);
* ``no incidents``: neither model reports anything and the scenarios hold none of this type;
* ``first model``: no baseline was given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gridwatch.app.scenario_suite import (
    ANALYSIS_FPS,
    DWELL_S,
    RADIUS_M,
    SUITE_DIR,
    SuiteRun,
    run_suite,
    score_rows,
    select_scenarios,
)
from gridwatch.models.base import Detector
from gridwatch.models.onnx_backend import OnnxDetector
from gridwatch.models.tta import with_tta
from gridwatch.synth.incident_match import TypeScore

DEFAULT_CONF = 0.25  # the site config's default `detector.conf`: what a gateway runs unless told otherwise


@dataclass(frozen=True)
class IncidentRequest:
    model: Path
    baseline: Path | None
    cache: Path
    scenarios: int | None = None  # None: the whole fixed suite (plus variants)
    variants: int = 0
    names: tuple[str, ...] = ()
    conf: float = DEFAULT_CONF
    threads: int | None = None
    quiet: bool = False
    suite: Path = SUITE_DIR
    tta: str = "none"  # the model's test-time augmentation ('none' / 'flip' / 'multiscale'), as a detector's `tta`
    baseline_tta: str | None = None  # the baseline's; None = the same as `tta`


@dataclass(frozen=True)
class IncidentRow:
    type: str
    new: TypeScore
    base: TypeScore | None
    verdict: str


def incident_verdict(new: TypeScore, base: TypeScore | None) -> str:
    """better / worse / unchanged / mixed from found (tp) and false alarms (fp) on the same scenarios."""
    if base is None:
        return "first model"
    if new.tp + new.fp + new.fn == 0 and base.tp + base.fp == 0:
        return "no incidents"
    found, alarms = new.tp - base.tp, new.fp - base.fp
    if found == 0 and alarms == 0:
        return "unchanged"
    if found >= 0 and alarms <= 0:
        return "better"
    if found <= 0 and alarms >= 0:
        return "worse"
    return "mixed"


def compare_incidents(new: SuiteRun, base: SuiteRun | None) -> list[IncidentRow]:
    rows = []
    for t, s in new.scores.items():
        b = base.scores.get(t, TypeScore(t)) if base is not None else None
        rows.append(IncidentRow(t, s, b, incident_verdict(s, b)))
    return rows


def _pr(s: TypeScore | None) -> str:
    if s is None:
        return ""
    p = "  -  " if s.precision is None else f"{s.precision:5.2f}"
    r = "  -  " if s.recall is None else f"{s.recall:5.2f}"
    return f"{p} {r} {s.tp:3d} {s.fp:3d} {s.fn:3d}"


def incident_table(rows: list[IncidentRow], scenarios: int, truths: int, conf: float, has_baseline: bool) -> str:
    """The side-by-side text table: P, R, TP, FP, FN per incident type for the model and the baseline."""
    lines = [
        f"incidents: {scenarios} scenarios of the synthetic suite ({truths} true incidents), "
        f"{ANALYSIS_FPS:g} analysis fps, conf {conf:g}, match within {RADIUS_M:g} m",
        f"{'':16} {'model':^23}" + (f"  {'baseline':^23}" if has_baseline else ""),
        f"{'type':16} {'    P     R  tp  fp  fn':23}"
        + (f"  {'    P     R  tp  fp  fn':23}" if has_baseline else "")
        + "  verdict",
    ]
    for r in rows:
        lines.append(
            f"{r.type:16} {_pr(r.new):23}" + (f"  {_pr(r.base):23}" if has_baseline else "") + f"  {r.verdict}"
        )
    lines.append(
        "verdict: more found without more false alarms (or fewer false alarms, as many found) = better; "
        "the reverse = worse; more or fewer of both = mixed"
    )
    return "\n".join(lines)


def incident_report(
    rows: list[IncidentRow],
    new: SuiteRun,
    base: SuiteRun | None,
    req: IncidentRequest,
) -> dict[str, Any]:
    """The incident part of metrics.json."""
    base_rows = {r["type"]: r for r in score_rows(base.scores)} if base is not None else {}
    return {
        "scenarios": [c["scenario"] for c in new.clips],
        "conf": req.conf,
        "analysis_fps": ANALYSIS_FPS,
        "dwell_s": DWELL_S,
        "radius_m": RADIUS_M,
        "types": [
            {**row, "baseline": base_rows.get(row["type"]), "verdict": r.verdict}
            for row, r in zip(score_rows(new.scores), rows, strict=True)
        ],
        "clips": new.clips,
        "baseline_clips": base.clips if base is not None else None,
    }


@contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Callable[[str], None]]:
    with Progress(
        TextColumn("[eval] {task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
    ) as progress:
        task = progress.add_task("scenario suite", total=total)

        def advance(what: str) -> None:
            progress.update(task, description=what, advance=1)

        yield advance


def _detector(path: Path, req: IncidentRequest, tta: str) -> Callable[[Path], Detector]:
    onnx = OnnxDetector.from_path(path, conf_threshold=req.conf, threads=req.threads)
    detector = with_tta(onnx, tta, onnx.iou_threshold)
    return lambda _clip: detector


def run_incident_eval(req: IncidentRequest) -> tuple[list[IncidentRow], str, dict[str, Any]]:
    """Run the suite with the model (and the baseline); return the rows, the printed table and the JSON part."""
    scenarios = select_scenarios(req.scenarios, req.variants, req.names, req.suite)
    per_run = 2 * len(scenarios)
    with _progress(per_run * (2 if req.baseline is not None else 1), req.quiet) as advance:
        new = run_suite(scenarios, req.cache, _detector(req.model, req, req.tta), advance, "model")
        base = (
            run_suite(scenarios, req.cache, _detector(req.baseline, req, req.baseline_tta or req.tta), advance,
                      "baseline")
            if req.baseline is not None
            else None
        )
    rows = compare_incidents(new, base)
    truths = sum(len(c["matched"]) + len(c["missed"]) for c in new.clips)
    text = incident_table(rows, len(scenarios), truths, req.conf, base is not None)
    return rows, text, incident_report(rows, new, base, req)
