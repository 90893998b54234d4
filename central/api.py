"""Read-only HTTP API and a dashboard over the case store (FastAPI).

- `GET /healthz`: the database answers; the number of cases.
- `GET /cases`: every case as `CaseRow` (the same rows as `central cases --json`); `?status=` filters.
- `GET /cases/{case_number}`: one case with its timeline.
- `GET /cases/{case_number}/snapshot.jpg`: the first snapshot of the incident.
- `GET /`: a dashboard page: cases drawn on an SVG scatter of WGS-84 lat/lon, grouped by grid cell, and a
  table. It is server-rendered with no scripts or external assets (Leaflet and map tiles need the internet).
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from gridwatch.central.store import Case, Store, open_store
from gridwatch.central.views import TABLE_COLUMNS, CaseRow, cases_as_rows, table_cells

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
SVG_W, SVG_H, PAD = 720, 480, 40


class TimelineStep(BaseModel):
    """One step of a case's timeline."""

    at: datetime
    step: str
    detail: str


class CaseDetail(CaseRow):
    """A case with everything the store knows about it."""

    category_version: str | None
    site_id: str
    gateway_id: str
    camera_id: str
    zone: str | None
    confidence: float
    accuracy_m: float | None
    last_seq: int
    snapshot_sha256: str | None
    model_name: str
    model_version: str
    created_at: datetime
    updated_at: datetime
    timeline: list[TimelineStep]


class Health(BaseModel):
    """The `/healthz` answer."""

    status: str
    cases: int


def create_app(db_url: str) -> FastAPI:
    """The API over the store at `db_url`; the store is opened at startup and closed at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = open_store(db_url)
        try:
            yield
        finally:
            app.state.store.close()

    app = FastAPI(title="gridwatch central", lifespan=lifespan)
    _add_routes(app)
    return app


def _session(request: Request) -> Iterator[Session]:
    store: Store = request.app.state.store
    with store.session() as session:
        yield session


def _case_or_404(session: Session, case_number: str) -> Case:
    case = session.scalars(select(Case).where(Case.case_number == case_number)).one_or_none()
    if case is None:
        raise HTTPException(status_code=404, detail=f"no case {case_number}")
    return case


def _add_routes(app: FastAPI) -> None:
    @app.get("/healthz")
    def healthz(session: Session = Depends(_session)) -> Health:
        """The database answers; how many cases it holds."""
        session.execute(text("SELECT 1"))
        return Health(status="ok", cases=int(session.scalar(select(func.count()).select_from(Case)) or 0))

    @app.get("/cases")
    def list_cases(status: str | None = None, session: Session = Depends(_session)) -> list[CaseRow]:
        """Every case (oldest first), optionally only those with `status`."""
        rows = cases_as_rows(session)
        return [r for r in rows if status is None or r.status == status]

    @app.get("/cases/{case_number}")
    def get_case(case_number: str, session: Session = Depends(_session)) -> CaseDetail:
        """One case with its timeline."""
        case = _case_or_404(session, case_number)
        fields = {name: getattr(case, name) for name in CaseDetail.model_fields if name != "timeline"}
        steps = [TimelineStep(at=t.at, step=t.step, detail=t.detail) for t in case.timeline]
        return CaseDetail(**fields, timeline=steps)

    @app.get("/cases/{case_number}/snapshot.jpg")
    def snapshot(case_number: str, session: Session = Depends(_session)) -> FileResponse:
        """The first snapshot JPEG of the case's incident."""
        case = _case_or_404(session, case_number)
        if case.snapshot_path is None or not Path(case.snapshot_path).is_file():
            raise HTTPException(status_code=404, detail=f"case {case_number} has no snapshot")
        return FileResponse(case.snapshot_path, media_type="image/jpeg")

    @app.get("/", response_class=HTMLResponse)
    def dashboard(session: Session = Depends(_session)) -> str:
        """The dashboard page."""
        return render_dashboard(cases_as_rows(session))


# --- dashboard -------------------------------------------------------------------------------------------


def _projector(rows: list[CaseRow]) -> tuple[float, float, float, float]:
    """Bounds (lat0, lat1, lon0, lon1) of the located cases, padded so one point is not a zero-size box."""
    lats = [r.lat for r in rows if r.lat is not None]
    lons = [r.lon for r in rows if r.lon is not None]
    lat0, lat1, lon0, lon1 = min(lats), max(lats), min(lons), max(lons)
    pad_lat, pad_lon = max((lat1 - lat0) * 0.1, 1e-4), max((lon1 - lon0) * 0.1, 1e-4)
    return lat0 - pad_lat, lat1 + pad_lat, lon0 - pad_lon, lon1 + pad_lon


def svg_map(rows: list[CaseRow]) -> str:
    """An SVG scatter of the located cases (x = lon, y = lat, equirectangular), one colour per grid cell,
    with each cell's extent drawn as a dashed box labelled with its code."""
    located = [r for r in rows if r.lat is not None and r.lon is not None]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_W}" height="{SVG_H}" role="img">']
    parts.append(f'<rect width="{SVG_W}" height="{SVG_H}" fill="#f7f7f2" stroke="#999"/>')
    if not located:
        parts.append(f'<text x="{PAD}" y="{SVG_H // 2}">no located cases</text></svg>')
        return "".join(parts)
    lat0, lat1, lon0, lon1 = _projector(located)

    def xy(lat: float, lon: float) -> tuple[float, float]:
        x = PAD + (lon - lon0) / (lon1 - lon0) * (SVG_W - 2 * PAD)
        y = SVG_H - PAD - (lat - lat0) / (lat1 - lat0) * (SVG_H - 2 * PAD)
        return round(x, 1), round(y, 1)

    cells = sorted({r.grid_cell or "-" for r in located})
    colour = {cell: PALETTE[i % len(PALETTE)] for i, cell in enumerate(cells)}
    for cell in cells:
        members = [xy(r.lat, r.lon) for r in located if (r.grid_cell or "-") == cell]  # type: ignore[arg-type]
        xs, ys = [p[0] for p in members], [p[1] for p in members]
        x, y, w, h = min(xs) - 12, min(ys) - 12, max(xs) - min(xs) + 24, max(ys) - min(ys) + 24
        parts.append(
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="none" stroke="{colour[cell]}" '
            f'stroke-dasharray="4 3"/><text x="{x}" y="{y - 3}" font-size="11" fill="{colour[cell]}">'
            f"grid {html.escape(cell)}</text>"
        )
    for r in located:
        x, y = xy(r.lat, r.lon)  # type: ignore[arg-type]
        title = html.escape(f"{r.case_number} {r.type} {r.status} ({r.lat:.6f}, {r.lon:.6f})")
        parts.append(
            f'<circle cx="{x}" cy="{y}" r="6" fill="{colour[r.grid_cell or "-"]}" class="case">'
            f"<title>{title}</title></circle>"
        )
    parts.append(
        f'<text x="{PAD}" y="{SVG_H - 8}" font-size="11">lon {lon0:.5f} .. {lon1:.5f}, '
        f"lat {lat0:.5f} .. {lat1:.5f} (WGS-84)</text></svg>"
    )
    return "".join(parts)


def render_dashboard(rows: list[CaseRow]) -> str:
    """The dashboard page: map and table, refreshed every 10 s."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in TABLE_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in table_cells(r)) + "</tr>" for r in rows)
    return (
        '<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">'
        "<title>gridwatch cases</title><style>body{font-family:sans-serif;margin:1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}</style>"
        f"</head><body><h1>gridwatch cases ({len(rows)})</h1>{svg_map(rows)}"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>"
    )
