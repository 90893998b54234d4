"""Read models of the case store: the rows behind `central cases`, its JSON, and the demo's table.

`cases_as_rows` is the one query; `cases_table` and `cases_json` only format its rows, so whatever prints a
case list (the CLI, the demo, the API) shows exactly what the database holds.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from gridwatch.central.store import Case, DeadLetter


class CaseRow(BaseModel):
    """One case as listed. The field names are the stable keys of `central cases --json`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case_number: str
    incident_id: str
    type: str
    category_code: str | None
    category_name: str | None
    status: str
    grid_cell: str | None
    cleaner: str
    lat: float | None
    lon: float | None
    started_at: datetime
    ended_at: datetime | None
    dwell_s: float
    snapshot_path: str | None

    @classmethod
    def from_case(cls, case: Case) -> CaseRow:
        return cls.model_validate({name: getattr(case, name) for name in cls.model_fields})


def cases_as_rows(session: Session, cleaner: str | None = None) -> list[CaseRow]:
    """Every case (or only those assigned to `cleaner`), oldest first."""
    query = select(Case).order_by(Case.id)
    if cleaner is not None:
        query = query.where(Case.cleaner == cleaner)
    return [CaseRow.from_case(case) for case in session.scalars(query)]


def cases_json(rows: list[CaseRow]) -> str:
    """The rows as a JSON list (ISO-8601 UTC times, keys in field order)."""
    return json.dumps([row.model_dump(mode="json") for row in rows], ensure_ascii=False, indent=2)


def _fmt_latlon(row: CaseRow) -> str:
    return "-" if row.lat is None or row.lon is None else f"{row.lat:.6f}, {row.lon:.6f}"


def table_cells(row: CaseRow) -> list[str]:
    """The printed cells of one row, in `TABLE_COLUMNS` order."""
    category = f"{row.category_code} {row.category_name}" if row.category_code else "-"
    return [
        row.case_number,
        row.type,
        category,
        row.status,
        row.grid_cell or "-",
        row.cleaner,
        _fmt_latlon(row),
        f"{row.started_at:%Y-%m-%d %H:%M:%S}Z",
        f"{row.dwell_s:.0f}s",
        "yes" if row.snapshot_path else "-",
    ]


TABLE_COLUMNS = (
    "case",
    "type",
    "category",
    "status",
    "grid cell",
    "cleaner",
    "lat, lon",
    "started (UTC)",
    "dwell",
    "snapshot",
)


def cases_table(rows: list[CaseRow], title: str = "cases") -> Table:
    """A rich table of the rows (what `central cases` and the demo print)."""
    table = Table(title=title)
    for column in TABLE_COLUMNS:
        table.add_column(column, no_wrap=column in ("case", "lat, lon", "started (UTC)"))
    for row in rows:
        table.add_row(*table_cells(row))
    return table


def dead_letters_table(session: Session, limit: int = 100) -> Table:
    """The newest dead letters: when, topic, size, error, and the payload's first bytes."""
    table = Table(title="dead letters")
    for column in ("id", "received (UTC)", "topic", "bytes", "error", "payload"):
        table.add_column(column)
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    for letter in session.scalars(query):
        table.add_row(
            str(letter.id),
            f"{letter.received_at:%Y-%m-%d %H:%M:%S}",
            letter.topic,
            str(len(letter.payload)),
            letter.error,
            repr(letter.payload[:40]),
        )
    return table
