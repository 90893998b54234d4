"""`gridwatch demo` as a user runs it: a subprocess, its own Mosquitto, the shipped demo model."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gridwatch.wire.events import IncidentEvent
from tests.e2e.videos import assert_review_video, last_frame, magenta_pixels

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One `gridwatch demo` run (its output folder and stdout), shared by the tests below: it takes a minute."""
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    proc = subprocess.run([sys.executable, "-m", "gridwatch.app.cli", "demo", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_demo_creates_a_case_per_scripted_incident(demo_run: tuple[Path, str]) -> None:
    out, stdout = demo_run
    with sqlite3.connect(out / "cases.db") as db:
        rows = db.execute("SELECT case_number, incident_id, type, snapshot_path FROM cases").fetchall()
    printed = set(re.findall(r"GW-\d{8}-\d{4}", stdout))
    assert printed == {r[0] for r in rows}, "the printed table must show exactly the cases in cases.db"
    truth = json.loads((out / "clip" / "truth.json").read_text())
    assert sorted(r[2] for r in rows) == sorted(i["type"] for i in truth["incidents"])
    for _, incident_id, _, snapshot in rows:
        assert snapshot and Path(snapshot).exists(), incident_id
        assert (out / "snapshots" / f"{incident_id}.jpg").exists()
    events = [IncidentEvent.from_json(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert {e.incident_id for e in events} == {r[1] for r in rows}
    # Every scripted object is still in the scene when the clip ends: the end of the clip is not the end of the
    # incident, so no case may read resolved (issue 5, defect 1).
    with sqlite3.connect(out / "cases.db") as db:
        statuses = dict(db.execute("SELECT incident_id, status FROM cases").fetchall())
    assert statuses and "resolved_on_camera" not in statuses.values(), statuses
    assert {e.end_reason for e in events if e.phase == "ended"} == {"source_ended"}
    # One review frame per analysed frame: the clip's frames at 5 of its fps, at the clip's size.
    analysed = round(truth["frame_count"] * 5 / truth["fps"])
    assert_review_video(out / "annotated.mp4", analysed, truth["width"], truth["height"])
    assert "MISSED" not in stdout


def test_the_demo_shows_an_incident_found_by_the_scene_change_path(demo_run: tuple[Path, str]) -> None:
    """The dumped fridge has no class in the demo model: its exposed_garbage case exists only because the
    scene-change stage found it. The event says so (subject `unknown_object` with its area), the comparison with the
    truth says so, the case is dispatched with a snapshot, and the review video draws the region in magenta."""
    out, stdout = demo_run
    with sqlite3.connect(out / "cases.db") as db:
        (case_number, incident_id, cleaner, snapshot), = db.execute(
            "SELECT case_number, incident_id, cleaner, snapshot_path FROM cases WHERE type = 'exposed_garbage'"
        ).fetchall()
    assert cleaner.startswith("cleaner-") and snapshot and Path(snapshot).exists()
    events = [IncidentEvent.from_json(line) for line in (out / "events.jsonl").read_text().splitlines()]
    started = next(e for e in events if e.incident_id == incident_id and e.phase == "started")
    (subject,) = [o for o in started.objects if o.role == "subject"]
    assert subject.class_name == "unknown_object" and subject.area_m2 is not None
    row = next(line for line in stdout.splitlines() if line.strip().startswith("exposed_garbage"))  # truth table
    assert case_number in row and "found" in row and "scene change" in row, row
    assert f"{case_number} (exposed_garbage) was found by the scene-change path" in stdout
    # The fridge stays to the end: the last review frame shows its tracked region as a dashed magenta box.
    assert started.box is not None
    box = (started.box.x1, started.box.y1, started.box.x2, started.box.y2)
    assert magenta_pixels(last_frame(out / "annotated.mp4"), box) > 40
