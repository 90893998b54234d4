"""The recorded-detections regression: a committed JSONL replayed through the rules, compared with a committed
summary. After a deliberate rule change, regenerate the summary with `GRIDWATCH_UPDATE_REPLAY=1 pytest
tests/pipelines/test_replay.py` and review the diff of `tests/fixtures/replay/*.expected.json`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gridwatch.pipelines.replay import parse_recording, replay_text
from tests.pipelines import replay_scenario

REPLAY = Path(__file__).resolve().parent.parent / "fixtures" / "replay"
RECORDINGS = sorted(REPLAY.glob("*.jsonl"))


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: p.stem)
def test_replayed_updates_match_the_committed_summary(recording: Path) -> None:
    got = replay_text(recording.read_text().splitlines())
    expected_path = recording.with_suffix(".expected.json")
    if os.environ.get("GRIDWATCH_UPDATE_REPLAY") == "1":
        expected_path.write_text("[\n" + ",\n".join(json.dumps(row) for row in got) + "\n]\n")  # a line per update
    assert expected_path.exists(), f"no {expected_path.name}: run with GRIDWATCH_UPDATE_REPLAY=1 to create it"
    expected = json.loads(expected_path.read_text())
    assert got == expected, (f"{recording.name}: the rules now produce different updates; if intended, regenerate "
                             "with GRIDWATCH_UPDATE_REPLAY=1 and commit the diff")


def test_there_is_a_recording_and_it_is_small() -> None:
    assert RECORDINGS
    assert all(p.stat().st_size < 240_000 for p in RECORDINGS)


def test_street_recording_is_the_committed_scenario() -> None:
    assert (REPLAY / "street.jsonl").read_text().splitlines() == replay_scenario.lines()


def test_street_summary_has_the_scenario_incidents() -> None:
    """The committed summary is not just any output: it holds what the scenario is about."""
    got = replay_text((REPLAY / "street.jsonl").read_text().splitlines())
    starts = {(r["type"], r["started"]): dict((role, tid) for role, tid in r["tracks"])
              for r in got if r["phase"] == "started"}
    assert starts == {
        ("illegal_parking", 9.5): {"subject": 1},  # within the stillness tolerance of its stop
        ("exposed_garbage", 20.0): {"subject": 40},
        ("littering", 30.0): {"subject": 30, "owner": 3},
        ("street_vendor", 14.0): {"goods": 72, "vendor": 5},  # the three goods regions (the dict keeps the last)
        ("fallen_wire", 50.0): {"subject": 60},
        ("overflowing_bin", 40.0): {"subject": 80},  # the bin, not the garbage boxes on it
        ("exposed_garbage", 55.0): {"subject": 82},  # the loose heap only
    }
    assert all(r["end_reason"] in ("gone", "source_ended") for r in got if r["phase"] == "ended")


def test_bad_line_is_named() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_recording(['{"incidents": {}}', '{"ts": 1}'])
