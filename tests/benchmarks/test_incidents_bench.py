"""benchmarks/incidents.py without the shared data: the composite family is reported as not run, never as met."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import incidents


def test_missing_shared_data_reports_the_composite_family_as_not_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GRIDWATCH_SHARED", str(tmp_path / "nowhere"))
    out = tmp_path / "r.json"
    assert incidents.main(["--json", str(out), "--only", "no-such-scenario", "--cache", str(tmp_path / "c")]) == 0
    result = json.loads(out.read_text())
    assert result["composite"]["run"] is False and "shared data not found" in result["composite"]["why"]
    composite = [g for g in result["goals"] if g["name"].startswith("composite_")]
    assert len(composite) == 9 and not any(g["met"] for g in composite)
    assert all(g["value"] is None and g["unit"].startswith("NOT RUN") for g in composite)
    assert "composite family NOT RUN" in capsys.readouterr().out
