"""The demo's case table at the width of a default terminal: every value that matters is printed whole."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from rich.cells import cell_len
from rich.console import Console

from gridwatch.app.demo import SCENE_CHANGE_PATH, TruthMatch, fitted_cases_table, matches_table
from gridwatch.central.views import CaseRow

ROWS = [
    CaseRow(case_number=f"GW-20261130-000{i}", incident_id=f"cam-demo-01-{t}-0000{i}", type=t, category_code=code,
            category_name=name, status="open", grid_cell="1101050101", cleaner="cleaner-05", lat=31.230505,
            lon=121.473684, started_at=datetime(2026, 11, 30, 10, 26, i, tzinfo=timezone.utc), ended_at=None,
            dwell_s=45.0, snapshot_path="/x.jpg")
    for i, (t, code, name) in enumerate([("illegal_parking", "09009", "机动车乱停放"),
                                         ("street_vendor", "09006", "占道经营"), ("littering", "06010", "暴露垃圾"),
                                         ("fallen_wire", "10002", "架空线缆脱落")], start=1)
] + [CaseRow(case_number="GW-20261130-0005", incident_id="x", type="littering", category_code="06010",
             category_name="暴露垃圾", status="resolved_on_camera", grid_cell=None, cleaner="dispatch-desk", lat=None,
             lon=None, started_at=datetime(2026, 11, 30, tzinfo=timezone.utc), ended_at=None, dwell_s=1.0,
             snapshot_path=None)]


@pytest.mark.parametrize("width", [80, 100, 250])
def test_case_table_shows_what_matters_at_any_width(width: int) -> None:
    console = Console(width=width, record=True)
    console.print(fitted_cases_table(ROWS, width))
    text = console.export_text()
    for row in ROWS:
        for value in (row.case_number, row.type, row.category_code, row.category_name, row.status, row.cleaner,
                      row.grid_cell or "-"):
            assert value and value in text, f"{value!r} missing at {width} columns:\n{text}"
    assert max(cell_len(line) for line in text.splitlines()) <= width


def test_truth_table_says_which_path_found_each_case_whole_at_80_columns() -> None:
    garbage = ROWS[4].model_copy(update={"incident_id": "cam-demo-01-exposed_garbage-1", "type": "exposed_garbage"})
    matches = [TruthMatch(r.type, 5.0, r, 0.4) for r in ROWS[:4]]
    matches += [TruthMatch("exposed_garbage", 26.0, garbage, 0.2), TruthMatch("littering", 40.0, None, None)]
    paths = {r.incident_id: f"detector: {c}" for r, c in zip(ROWS[:4], ["car", "stall", "litter", "wire"], strict=True)}
    paths[garbage.incident_id] = SCENE_CHANGE_PATH
    console = Console(width=80, record=True)
    console.print(matches_table(matches, paths))
    text = console.export_text()
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "GW-20261130-0005" in lines["exposed_garbage"] and SCENE_CHANGE_PATH in lines["exposed_garbage"]
    assert "detector: litter" in text and "GW-20261130-0001" in lines["illegal_parking"]
    assert "MISSED" in text
