"""`gridwatch demo`: the whole loop on one machine, on real parts.

1. render the bundled synthetic street scenario (calibrated camera, kerb no-parking zone, a car that parks,
   a person who drops litter and walks off, traffic that drives through) unless it is cached;
2. start a private Mosquitto broker on a free port (or use `--broker`);
3. start the central service (SQLite `cases.db`, snapshots, `events.jsonl` of every message as received);
4. run the edge worker on the clip with the shipped demo ONNX model: detector -> tracker -> rules -> geotag ->
   outbox -> MQTT 5 QoS 1;
5. wait until central has stored every event, print the cases (read back from `cases.db`) and compare them with
   the scenario's ground truth, saying for each case which path found it: a detector class, or the class-agnostic
   scene-change stage (the incident's subject is a region, class `unknown_object`: the dumped fridge, which the
   demo model has no class for).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

import gridwatch.models
import gridwatch.synth
from gridwatch.app.broker import MosquittoBroker
from gridwatch.calibration.geo import wgs84_to_enu
from gridwatch.calibration.grid import make_regular_grid
from gridwatch.central.roster import Roster
from gridwatch.central.service import CentralService
from gridwatch.central.store import EventRow
from gridwatch.central.views import TABLE_COLUMNS, CaseRow, cases_as_rows, cases_table, table_cells
from gridwatch.edge.config import CameraConfig, SiteConfig, parse_site_config
from gridwatch.edge.loop import FrameSource, Sink
from gridwatch.edge.sinks import ProgressSink, VideoSink
from gridwatch.edge.worker import EdgeWorker
from gridwatch.pipelines.registry import default_registry
from gridwatch.pipelines.rule_config import REGION_CLASS
from gridwatch.wire.events import IncidentEvent

SCENARIO = Path(gridwatch.synth.__file__).resolve().parent / "scenarios" / "demo.yaml"
MODEL = Path(gridwatch.models.__file__).resolve().parent / "demo" / "gridwatch-demo-yolo11n.onnx"
SUPPORTED = default_registry().names()  # truth incidents of other types are "no pipeline yet"
MATCH_RADIUS_M = 8.0
SCENE_CHANGE_PATH = "scene change"
"""What the demo prints as "found by" for an incident whose subject is a scene-change region."""

console = Console()


@dataclass(frozen=True)
class TruthMatch:
    type: str
    start_s: float
    case: CaseRow | None
    distance_m: float | None


def ensure_clip(out: Path, regenerate: bool) -> tuple[Path, dict[str, Any]]:
    """The demo clip and its truth, rendered from `synth/scenarios/demo.yaml` (cached in DIR/clip)."""
    from gridwatch.synth.generate import generate

    clip_dir = out / "clip"
    truth_path = clip_dir / "truth.json"
    if regenerate or not truth_path.exists():
        shutil.rmtree(clip_dir, ignore_errors=True)
        with console.status("rendering the demo street scenario"):
            generate(SCENARIO, clip_dir, progress=False)
    truth = json.loads(truth_path.read_text())
    return clip_dir / truth.get("video", "video.mp4"), truth


def site_config(truth: dict[str, Any], clip: Path, out: Path, protocol: str = "5") -> tuple[SiteConfig, Roster]:
    """A site config for the demo camera, calibrated from the scenario's camera pose; zones on the ground."""
    cam = truth["camera"]
    hfov = math.degrees(2 * math.atan(cam["width"] / 2 / cam["fx"]))
    zones = {z["name"]: z for z in truth["zones"]}
    grid = make_regular_grid(cam["lat"], cam["lon"], 3, 3, 60.0, code_prefix="110105")
    (out / "grid.geojson").write_text(json.dumps(grid))
    cells = {f["properties"]["grid_code"]: f["properties"]["cleaner"] for f in grid["features"]}
    data = {
        "site_id": "demo-site",
        "gateway_id": "gw-demo-01",
        "detector": {"type": "onnx", "model": str(MODEL), "conf": 0.3},
        "grid_geojson": str(out / "grid.geojson"),
        "mqtt": {"protocol": protocol},
        "outbox": {"path": str(out / "edge" / "outbox.db")},
        "evidence": {"dir": str(out / "edge" / "evidence")},
        "cameras": [{
            "id": "cam-demo-01",
            "source": {"type": "file", "path": str(clip)},
            "analysis_fps": 5,
            "calibration": {"type": "pinhole", "hfov_deg": hfov, "height_m": cam["height_m"],
                            "tilt_deg": cam["tilt_deg"], "heading_deg": cam["heading_deg"] % 360,
                            "lat": cam["lat"], "lon": cam["lon"]},
            "zones": [{"name": n, "ground": [[p[0], p[1]] for p in z["latlon"]]} for n, z in zones.items()],
            # Short dwells so a one-minute clip shows every incident type; real sites use minutes.
            "incidents": {
                "illegal_parking": {"zones": [_kerb_zone(zones)], "dwell_s": 10.0},
                "littering": {"dwell_s": 5.0},
                "street_vendor": {"dwell_s": 10.0},
                "fallen_wire": {"dwell_s": 3.0},
                # Only scene-change regions: the demo model's `litter` is the walker's bag, littering's case.
                "exposed_garbage": {"zones": ["sidewalk"], "dwell_s": 5.0, "classes": [REGION_CLASS]},
            },
        }],
    }
    return parse_site_config(data, "demo"), Roster(default_cleaner="dispatch-desk", cells=cells)


def _kerb_zone(zones: dict[str, Any]) -> str:
    for name in zones:
        if "no_parking" in name or "kerb" in name:
            return name
    raise RuntimeError(f"the demo scenario has no kerb/no-parking zone (zones: {list(zones)})")


def run_demo(out: Path, broker: str | None = None, regenerate: bool = False, protocol: str = "5") -> int:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("cases.db", "events.jsonl", "annotated.mp4"):
        (out / stale).unlink(missing_ok=True)
    shutil.rmtree(out / "snapshots", ignore_errors=True)
    shutil.rmtree(out / "edge", ignore_errors=True)
    if not MODEL.exists():
        console.print(f"[red]demo model {MODEL} is missing; run `gridwatch models train` ([train] extra)")
        return 2
    clip, truth = ensure_clip(out, regenerate)
    cfg, roster = site_config(truth, clip, out, protocol)
    with ExitStack() as stack:
        url = broker or stack.enter_context(MosquittoBroker()).url
        console.print(f"broker: {url}")
        central = CentralService(url, f"sqlite:///{out / 'cases.db'}", evidence_dir=out / "snapshots",
                                 events_log=out / "events.jsonl", roster=roster, client_id="gridwatch-demo-central",
                                 protocol=cfg.mqtt.protocol)
        stack.callback(central.stop)
        central.start()
        emitted, started = _run_edge(cfg, url, out, int(truth.get("frame_count", 0)))
        ok = central.wait_for(lambda: central.counters.stored + central.counters.duplicates >= emitted, 30.0)
        central.wait_for(lambda: central.counters.evidence >= started, 10.0)  # one snapshot per started incident
        with central.store.session() as session:
            rows = cases_as_rows(session)
            paths = found_by(session)
        console.print(fitted_cases_table(rows, console.width, title=f"cases in {out / 'cases.db'}"))
        matches = match_truth(truth, rows, cfg)
        console.print(matches_table(matches, paths))
        _print_scene_change_cases(rows, paths)
        console.print(f"edge emitted {emitted} events; central stored {central.counters.stored}, "
                      f"duplicates {central.counters.duplicates}, dead letters {central.counters.dead_letters}")
        console.print(f"outputs in {out}: cases.db, events.jsonl, annotated.mp4, snapshots/")
        missing = [m for m in matches if m.type in SUPPORTED and m.case is None]
        return 0 if ok and not missing else 1


def _run_edge(cfg: SiteConfig, url: str, out: Path, frames: int) -> tuple[int, int]:
    """Run the edge worker on the clip; returns (events emitted, incidents started).

    The worker's camera loop also feeds the review video and the progress bar (sinks), so the demo draws exactly
    what the edge analysed."""
    phases: list[str] = []

    def sinks(cam: CameraConfig, source: FrameSource) -> list[Sink]:
        return [VideoSink(out / "annotated.mp4", cam.analysis_fps),
                ProgressSink(f"edge: {cam.id}", source.stats, source.expected_frames or frames or None,
                             console=console)]

    worker = EdgeWorker(cfg, broker=url, start_wall=datetime.now(timezone.utc), extra_sinks=sinks,
                        on_emitted=lambda e: phases.append(e.event.phase))
    worker.start()
    while not worker.cameras_done():
        time.sleep(0.2)
    drained = worker.stop(drain_s=20.0)
    if not drained:
        console.print("[yellow]edge outbox not fully drained; pending events stay in the outbox")
    return len(phases), phases.count("started")


# The narrow layout stacks related values in one cell, one per line, so every value stays whole (a folded
# `resolved_on_camera` cannot be read or grepped): case / started, type / category, status / dwell,
# grid cell / cleaner. Location and snapshot are left to `gridwatch central cases --json`.
_STACKED = (("case", "started (UTC)"), ("type", "category"), ("status", "dwell"), ("grid cell", "cleaner"))


def fitted_cases_table(rows: list[CaseRow], width: int, title: str = "cases") -> Table:
    """The case table for a terminal `width` columns wide: the full table when it fits on one line per case,
    otherwise a stacked one that keeps case, type, category, status, grid cell and cleaner readable at 80."""
    cells = [dict(zip(TABLE_COLUMNS, table_cells(r), strict=True)) for r in rows]
    full = sum(max([cell_len(c)] + [cell_len(r[c]) for r in cells]) + 3 for c in TABLE_COLUMNS) + 1
    if full <= width:
        return cases_table(rows, title=title)
    table = Table(title=title, box=box.SIMPLE_HEAD, show_lines=False, pad_edge=False)
    for top, bottom in _STACKED:
        table.add_column(f"{top}\n{bottom}", no_wrap=True)
    for r in cells:
        table.add_row(*[f"{r[top]}\n{r[bottom]}" for top, bottom in _STACKED], end_section=True)
    return table


def match_truth(truth: dict[str, Any], rows: list[CaseRow], cfg: SiteConfig) -> list[TruthMatch]:
    """Each ground-truth incident matched to the nearest case of the same type within MATCH_RADIUS_M."""
    cam = truth["camera"]
    out: list[TruthMatch] = []
    for inc in truth["incidents"]:
        best: tuple[float, CaseRow] | None = None
        for row in rows:
            if row.type != inc["type"] or row.lat is None or row.lon is None:
                continue
            e, n = wgs84_to_enu(row.lat, row.lon, cam["lat"], cam["lon"])
            te, tn = wgs84_to_enu(inc["lat"], inc["lon"], cam["lat"], cam["lon"])
            d = math.hypot(float(e) - float(te), float(n) - float(tn))
            if d <= MATCH_RADIUS_M and (best is None or d < best[0]):
                best = (d, row)
        out.append(TruthMatch(inc["type"], float(inc["start_s"]), best[1] if best else None,
                              best[0] if best else None))
    return out


def found_by(session: Session) -> dict[str, str]:
    """incident_id -> the path that found it, from the subject objects of its `started` event as central stored
    it: `scene change` when a subject is a scene-change region (`unknown_object`), else `detector: <class>`."""
    out: dict[str, str] = {}
    for payload in session.scalars(select(EventRow.payload).where(EventRow.phase == "started")):
        event = IncidentEvent.from_json(payload)
        subjects = sorted({o.class_name for o in event.objects if o.role == "subject"})
        if REGION_CLASS in subjects:
            out[event.incident_id] = SCENE_CHANGE_PATH
        else:
            out[event.incident_id] = f"detector: {', '.join(subjects) or '?'}"
    return out


def matches_table(matches: list[TruthMatch], paths: dict[str, str]) -> Table:
    """Ground truth vs cases, one row per truth incident, with the path that found its case (`found_by`); fits
    80 columns (no vertical rules) so no value is cut at a default terminal."""
    table = Table(title="scenario ground truth vs cases", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("truth\nincident", "starts\nat", "case", "distance\nm", "result", "found by"):
        table.add_column(col, no_wrap=True)
    for m in matches:
        if m.case is not None:
            result = "[green]found"
        elif m.type in SUPPORTED:
            result = "[red]MISSED"
        else:
            result = "[yellow]no pipeline yet"
        path = paths.get(m.case.incident_id, "?") if m.case else "-"
        table.add_row(m.type, f"{m.start_s:.1f} s", m.case.case_number if m.case else "-",
                      f"{m.distance_m:.1f}" if m.distance_m is not None else "-", result,
                      f"[magenta]{path}" if path == SCENE_CHANGE_PATH else path)
    return table


def _print_scene_change_cases(rows: list[CaseRow], paths: dict[str, str]) -> None:
    """One line per case the scene-change stage found: what no detector class covers, and where to look."""
    for row in rows:
        if paths.get(row.incident_id) == SCENE_CHANGE_PATH:
            console.print(f"{row.case_number} ({row.type}) was found by the scene-change path: its subject is a "
                          f"region ({REGION_CLASS}), not a detector class; dashed magenta `region` box in "
                          "annotated.mp4")
