"""`gridwatch models eval`, incident level: the scenario suite with a model and a baseline, side by side.

The end-to-end test runs a short cut of the suite's street-vendor scenario through the real edge pipeline with
the shipped demo model (which has `stall`) against the shipped street model (which has not): the demo model must
find the stall, the street model must not, and the verdict must say `better`.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from gridwatch.app.cli import main
from gridwatch.app.demo import MODEL as DEMO_MODEL
from gridwatch.app.incident_eval import incident_verdict
from gridwatch.app.scenario_suite import SUITE_DIR, TYPES, SuiteError, select_scenarios
from gridwatch.synth.incident_match import TypeScore
from gridwatch.synth.scene import Scene
from gridwatch.synth.truth import build_truth

STREET_MODEL = DEMO_MODEL.parents[1] / "street" / "gridwatch-street-yolo11n.onnx"


def ts(tp: int, fp: int, fn: int) -> TypeScore:
    return TypeScore("littering", tp=tp, fp=fp, fn=fn)


@pytest.mark.parametrize(("new", "base", "expected"), [
    (ts(3, 0, 0), ts(2, 0, 1), "better"),  # one more found, no more alarms
    (ts(2, 0, 1), ts(2, 1, 1), "better"),  # as many found, one alarm fewer
    (ts(1, 2, 2), ts(2, 2, 1), "worse"),
    (ts(2, 1, 1), ts(2, 0, 1), "worse"),
    (ts(2, 1, 1), ts(2, 1, 1), "unchanged"),
    (ts(3, 2, 0), ts(2, 0, 1), "mixed"),  # found more, alarmed more
    (ts(1, 0, 2), ts(2, 1, 1), "mixed"),
    (ts(0, 0, 0), ts(0, 0, 0), "no incidents"),
    (ts(0, 0, 1), ts(0, 0, 1), "unchanged"),  # a truth both miss is a (bad) tie, not "no incidents"
    (ts(0, 1, 0), ts(0, 0, 0), "worse"),  # an alarm where nothing happened
    (ts(2, 0, 1), None, "first model"),
])
def test_incident_verdicts(new: TypeScore, base: TypeScore | None, expected: str) -> None:
    assert incident_verdict(new, base) == expected


def test_any_prefix_mixes_positives_and_negatives_and_ten_cover_every_type() -> None:
    scenarios = select_scenarios()
    assert len(scenarios) == len(list(SUITE_DIR.glob("*.yaml"))) == 17
    first = [s.name for s in scenarios[:2]]
    assert first[0].startswith("pos_") and first[1].startswith("neg_")
    covered = {i.type for s in scenarios[:10] for i in build_truth(Scene.compile(s)).incidents}
    assert covered == set(TYPES)
    assert [s.name for s in select_scenarios(3)] == [s.name for s in scenarios[:3]]
    assert len(select_scenarios(2, variants=2)) == 2 and len(select_scenarios(None, variants=2)) == 19
    assert [s.name for s in select_scenarios(names=["neg_rain", "pos_wire"])] == ["pos_wire", "neg_rain"]


def test_a_bad_subset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"unknown scenario.*pos_nothing"):
        select_scenarios(names=["pos_nothing"])
    with pytest.raises(SuiteError, match="0 or more"):
        select_scenarios(-1)
    with pytest.raises(SuiteError, match="no scenarios in"):
        select_scenarios(folder=tmp_path)


def tiny_data(root: Path) -> Path:
    """Two grey val images with one `car` box each: classes both models share a name with (car, garbage)."""
    (root / "val" / "images").mkdir(parents=True)
    (root / "val" / "labels").mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(root / "val" / "images" / f"{i}.jpg"), np.full((360, 640, 3), 90, np.uint8))
        (root / "val" / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("train: val/images\nval: val/images\nnames: {0: car, 1: garbage}\n")
    return root / "data.yaml"


def short_vendor_suite(folder: Path) -> Path:
    """The suite's street-vendor scenario cut to 12 s (the stall is up at 5 s, the dwell is 5 s)."""
    folder.mkdir(parents=True)
    sc = yaml.safe_load((SUITE_DIR / "pos_vendor.yaml").read_text())
    sc.update(name="pos_vendor_short", duration_s=12)
    (folder / "pos_vendor_short.yaml").write_text(yaml.safe_dump(sc), encoding="utf-8")
    return folder


def test_models_eval_reports_incidents_side_by_side_with_the_baseline(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_data(tmp_path / "data")  # the box level on a tiny set; the point here is the incident level
    out = tmp_path / "eval"
    args = ["models", "eval", str(DEMO_MODEL), "--data", str(data), "--baseline", str(STREET_MODEL), "--out",
            str(out), "--quiet", "--suite", str(short_vendor_suite(tmp_path / "suite")), "--scenario-cache",
            str(tmp_path / "cache"), "--threads", "1"]
    assert main(args) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.split()}
    assert "incidents: 1 scenarios of the synthetic suite (1 true incidents)" in text
    vendor = rows["street_vendor"]
    assert vendor[1:6] == ["1.00", "1.00", "1", "0", "0"]  # the demo model: found, nothing false
    assert vendor[-1] == "better" and vendor[8:11] == ["0", "0", "1"]  # the street model has no `stall`
    report = json.loads((out / "metrics.json").read_text())["incidents"]
    assert report["scenarios"] == ["pos_vendor_short"]
    by_type = {t["type"]: t for t in report["types"]}
    assert by_type["street_vendor"]["recall"] == 1.0 and by_type["street_vendor"]["baseline"]["recall"] == 0.0
    assert by_type["street_vendor"]["verdict"] == "better"
    assert report["clips"][0]["matched"][0]["type"] == "street_vendor"
    # a second run reuses the rendered clip
    stamp = (tmp_path / "cache" / "clips" / "pos_vendor_short" / "video.mp4").stat().st_mtime_ns
    assert main([*args, "--scenarios", "1"]) == 0
    assert (tmp_path / "cache" / "clips" / "pos_vendor_short" / "video.mp4").stat().st_mtime_ns == stamp
