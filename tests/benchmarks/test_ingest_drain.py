"""The in-process drain benchmark (benchmarks/ingest_drain.py), tiny, so it does not rot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import ingest_drain

from tests.central.conftest import PG_URL


@pytest.mark.e2e
def test_a_tiny_drain_stores_every_event_both_ways_and_writes_its_runs(tmp_path: Path) -> None:
    out = tmp_path / "drain.json"
    assert ingest_drain.main(["--messages", "120", "--rounds", "1", "--batch-size", "50", "--pg-url", PG_URL,
                              "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["goals"] == [] and set(report["runs"]) == {"inline", "ahead"}
    assert all(run["rate"] > 0 for runs in report["runs"].values() for run in runs)
    assert report["ahead_over_inline"] > 0
