"""The read-only API and dashboard serve what the store holds."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette asks for `httpx2`; the env ships httpx, which still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from gridwatch.central.api import create_app, svg_map
from gridwatch.central.categories import load_categories
from gridwatch.central.ingest import ingest_evidence, ingest_incident, write_files
from gridwatch.central.roster import Roster
from gridwatch.central.store import open_store
from gridwatch.central.views import cases_as_rows
from tests.central.factories import GRID_A, GRID_B, JPEG_BYTES, jpeg_props, lifecycle, make_event, payload, topic_of


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    events = [
        *lifecycle("inc-api-00001", updates=1),
        make_event("inc-api-00002", grid_cell=GRID_B),
        make_event("inc-api-00003", located=False, incident_type="fallen_wire"),
    ]
    with open_store(url) as store, store.session() as session:
        for event in events:
            ingest_incident(session, topic_of(event), payload(event), load_categories(), Roster(cells={GRID_A: "wang"}))
        result = ingest_evidence(session, topic_of(events[0], "evidence"), JPEG_BYTES, jpeg_props("inc-api-00001"),
                                 tmp_path / "evidence")
        session.commit()
        write_files(result)
    with TestClient(create_app(url)) as test_client:
        yield test_client


def test_cases_endpoint_equals_cases_as_rows(client: TestClient, tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'cases.db'}") as store, store.session() as session:
        rows = cases_as_rows(session)

    response = client.get("/cases")

    assert response.status_code == 200
    assert response.json() == [r.model_dump(mode="json") for r in rows]
    assert [c["incident_id"] for c in client.get("/cases", params={"status": "resolved_on_camera"}).json()] == [
        "inc-api-00001"
    ]


@pytest.mark.parametrize(
    ("path", "status", "expect"),
    [
        ("/healthz", 200, {"status": "ok", "cases": 3}),
        ("/cases/GW-19990101-0001", 404, None),
        ("/cases/GW-19990101-0001/snapshot.jpg", 404, None),
    ],
)
def test_simple_endpoints(client: TestClient, path: str, status: int, expect: object) -> None:
    response = client.get(path)
    assert response.status_code == status
    if expect is not None:
        assert response.json() == expect


def test_case_detail_and_snapshot(client: TestClient) -> None:
    number = client.get("/cases").json()[0]["case_number"]

    detail = client.get(f"/cases/{number}").json()
    image = client.get(f"/cases/{number}/snapshot.jpg")

    assert detail["incident_id"] == "inc-api-00001"
    assert detail["cleaner"] == "wang"
    assert [s["step"] for s in detail["timeline"]] == [
        "intake",
        "assigned",
        "updated",
        "ended",
        "resolved_on_camera",
        "snapshot",
    ]
    assert image.status_code == 200 and image.content == JPEG_BYTES
    assert image.headers["content-type"] == "image/jpeg"


def test_dashboard_draws_located_cases_by_grid_cell(client: TestClient) -> None:
    page = client.get("/")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count('class="case"') == 2  # the uncalibrated case is listed but not drawn
    assert f"grid {GRID_A}" in page.text and f"grid {GRID_B}" in page.text
    assert page.text.count("<tr>") == 4  # header + 3 cases
    assert "<script" not in page.text


def test_empty_map() -> None:
    assert "no located cases" in svg_map([])
