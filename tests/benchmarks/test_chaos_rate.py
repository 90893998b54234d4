"""The ingest-rate scenario (benchmarks/chaos_rate.py), tiny, so it does not rot; and its goal arithmetic."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import chaos
import chaos_rate

pytestmark = pytest.mark.e2e


def test_goals_compare_each_round_with_its_own_raw_rate() -> None:
    legs = [chaos_rate.Leg("raw", 10, 10, 1.0, 100.0, 1.0), chaos_rate.Leg("sqlite", 10, 10, 1.0, 60.0, 1.0),
            chaos_rate.Leg("postgresql", 10, 9, 1.0, 90.0, 1.0), chaos_rate.Leg("raw", 10, 10, 1.0, 200.0, 1.0),
            chaos_rate.Leg("sqlite", 10, 10, 1.0, 80.0, 1.0), chaos_rate.Leg("postgresql", 10, 10, 1.0, 150.0, 1.0)]
    goals = {g["name"]: g for g in chaos_rate.goals_of(legs)}
    assert goals["ingest_rate[sqlite].ratio_to_raw>=0.5"]["rounds"] == [0.6, 0.4]
    assert goals["ingest_rate[sqlite].ratio_to_raw>=0.5"]["value"] == pytest.approx(0.5)
    assert goals["ingest_rate[sqlite].ratio_to_raw>=0.5"]["met"]
    assert goals["ingest_rate[postgresql].ratio_to_raw>=0.8"]["value"] == pytest.approx(0.825)
    assert not goals["ingest_rate[postgresql].all_stored"]["met"]  # one event of a round never arrived


def test_the_messages_are_lifecycles_of_two_gateways() -> None:
    batch = chaos_rate.messages(8)
    bodies = [json.loads(body) for _, body in batch]
    assert [b["seq"] for b in bodies] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert [b["phase"] for b in bodies[:4]] == ["started", "updated", "updated", "ended"]
    assert {b["gateway_id"] for b in bodies} == {"gw-rate-01", "gw-rate-02"}
    assert all(topic.split("/")[3] == body["gateway_id"] for (topic, _), body in zip(batch, bodies, strict=True))
    assert len({b["event_id"] for b in bodies}) == 8


def test_chaos_runs_the_ingest_rate_scenario(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    chaos.main(["--json", str(out), "--faults", "", "--no-autosave-cost", "--fuzz-payloads", "0", "--no-attack",
                "--ingest-rate", "--rate-messages", "24",
                "--work", str(tmp_path / "work")])
    report = json.loads(out.read_text())
    assert [leg["name"] for leg in report["ingest_rate"]] == ["raw", "sqlite", "postgresql"]
    assert all(leg["arrived"] == 24 for leg in report["ingest_rate"]), report["ingest_rate"]
    names = {g["name"] for g in report["goals"]}
    assert names == {"ingest_rate[sqlite].ratio_to_raw>=0.5", "ingest_rate[sqlite].all_stored",
                     "ingest_rate[postgresql].ratio_to_raw>=0.8", "ingest_rate[postgresql].all_stored"}
