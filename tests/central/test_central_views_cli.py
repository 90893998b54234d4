"""cases_as_rows / the printed table / `central cases --json` show exactly what the store holds."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select

from gridwatch.app.cli import build_parser
from gridwatch.central.categories import load_categories
from gridwatch.central.ingest import ingest_incident
from gridwatch.central.roster import Roster
from gridwatch.central.store import Case, Store, open_store
from gridwatch.central.views import TABLE_COLUMNS, CaseRow, cases_as_rows, cases_json, cases_table, table_cells
from gridwatch.wire.mqtt import BrokerURL
from tests.central.factories import GRID_A, lifecycle, make_event, payload, topic_of

JSON_KEYS = [
    "case_number",
    "incident_id",
    "type",
    "category_code",
    "category_name",
    "status",
    "grid_cell",
    "cleaner",
    "lat",
    "lon",
    "started_at",
    "ended_at",
    "dwell_s",
    "snapshot_path",
]


def fill(store: Store) -> None:
    events = [
        *lifecycle("inc-view-0001", updates=1),
        make_event("inc-view-0002", incident_type="fallen_wire", located=False),
        make_event("inc-view-0003", incident_type="littering"),
    ]
    roster = Roster(default_cleaner="desk", cells={GRID_A: "cleaner-a"})
    with store.session() as session:
        for event in events:
            ingest_incident(session, topic_of(event), payload(event), load_categories(), roster)
        session.commit()


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse as the `gridwatch` console script does (its `central` group is filled by `register`)."""
    return build_parser().parse_args(argv)


def test_rows_match_the_store(store: Store) -> None:
    fill(store)
    with store.session() as session:
        rows = cases_as_rows(session)
        cases = list(session.scalars(select(Case).order_by(Case.id)))

    assert [r.incident_id for r in rows] == ["inc-view-0001", "inc-view-0002", "inc-view-0003"]
    for row, case in zip(rows, cases, strict=True):
        assert row.model_dump() == {key: getattr(case, key) for key in JSON_KEYS}
    assert [(r.status, r.category_code, r.cleaner) for r in rows] == [
        ("resolved_on_camera", "09009", "cleaner-a"),
        ("reported", "10002", "desk"),
        ("filed", "06010", "cleaner-a"),
    ]


def test_json_has_stable_keys_and_round_trips(store: Store) -> None:
    fill(store)
    with store.session() as session:
        rows = cases_as_rows(session)

    data = json.loads(cases_json(rows))
    assert [list(item) for item in data] == [JSON_KEYS] * 3
    assert [CaseRow.model_validate(item) for item in data] == rows
    assert data[0]["started_at"] == "2026-11-21T08:30:00Z"


def test_printed_table_shows_each_row(store: Store) -> None:
    fill(store)
    with store.session() as session:
        rows = cases_as_rows(session)
    table = cases_table(rows)

    assert [c.header for c in table.columns] == list(TABLE_COLUMNS)
    for index, row in enumerate(rows):
        assert [list(c.cells)[index] for c in table.columns] == table_cells(row)
    console = Console(file=io.StringIO(), width=250)
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert all(row.case_number in text for row in rows)
    assert "10002 架空线缆脱落" in text


@pytest.mark.parametrize(
    ("argv", "check"),
    [
        (["cases", "--json"], lambda out, rows: json.loads(out) == [r.model_dump(mode="json") for r in rows]),
        (["cases"], lambda out, rows: all(r.case_number in out for r in rows)),
        (["dead-letters"], lambda out, rows: "dead letters" in out),
    ],
    ids=["cases-json", "cases-table", "dead-letters"],
)
def test_cli_read_commands(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    check: Callable[[str, list[CaseRow]], bool],
) -> None:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    with open_store(url) as store:
        fill(store)
        with store.session() as session:
            rows = cases_as_rows(session)
    args = parse(["central", *argv, "--db", url])

    assert args.func(args) == 0
    assert check(capsys.readouterr().out, rows)


def test_run_parser_defaults() -> None:
    args = parse(["central", "run", "--broker", "mqtt://127.0.0.1:1884", "--protocol", "3.1.1"])
    assert (args.broker, args.protocol, args.prefix, args.share_group) == (
        "mqtt://127.0.0.1:1884",
        "3.1.1",
        "gridwatch/v1",
        "",  # a plain persistent subscription: a $share group is opt-in (issue 8, hole 4)
    )
    assert args.func.__name__ == "cmd_run"


def test_run_takes_credentials_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from gridwatch.central.cli import broker_url

    monkeypatch.setenv("GRIDWATCH_MQTT_PASSWORD", "p@ss word")
    args = argparse.Namespace(broker="mqtts://broker.example:8883", username="central")
    url = broker_url(args)
    parsed = BrokerURL.parse(url)
    assert (parsed.username, parsed.password, parsed.tls, parsed.port) == ("central", "p@ss word", True, 8883)
    assert broker_url(argparse.Namespace(broker="mqtt://h:1883", username=None)) == "mqtt://h:1883"
