"""The chaos benchmark, tiny: one broker SIGKILL during a 40-event burst, so the script does not rot
(benchmarks/chaos.py runs every fault with more events)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import chaos

pytestmark = pytest.mark.e2e


def test_shipped_broker_settings_save_on_every_change() -> None:
    settings = chaos.shipped_settings()
    assert "persistence true" in settings
    assert {"autosave_on_changes true", "autosave_interval 1"} <= set(settings)
    assert not [s for s in settings if "/" in s], "no production path may reach the benchmark's broker"


def test_a_broker_sigkill_mid_burst_loses_and_doubles_nothing(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    code = chaos.main(["--json", str(out), "--events", "40", "--gateways", "1", "--rate", "40", "--outage-s", "1",
                       "--faults", "broker-kill", "--no-autosave-cost", "--timeout-s", "60",
                       "--work", str(tmp_path / "work")])
    report = json.loads(out.read_text())
    outcome = report["outcomes"][0]
    assert (outcome["sent"], outcome["stored_cases"], outcome["event_rows"]) == (40, 40, 40), outcome
    assert {g["name"] for g in report["goals"]} == {
        "chaos[broker-kill].lost", "chaos[broker-kill].duplicate_cases", "chaos[broker-kill].drained"}
    assert all(g["met"] for g in report["goals"]), report["goals"]
    assert code == 0


def test_an_unknown_fault_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        chaos.main(["--faults", "meteor"])
    assert "unknown ['meteor']" in capsys.readouterr().err
