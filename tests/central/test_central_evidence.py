"""ingest_evidence: first snapshot per incident kept, written atomically, linked to its case whichever comes
first; bad evidence dead-lettered. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gridwatch.central.categories import load_categories
from gridwatch.central.ingest import IngestResult, ingest_evidence, ingest_incident
from gridwatch.central.roster import Roster
from gridwatch.central.store import Case, DeadLetter, EvidenceRow, Store
from tests.central.factories import JPEG_BYTES, make_event, payload

TOPIC = "gridwatch/v1/site-1/cam-1/evidence"
INCIDENT = "inc-evidence1"


def props(incident_id: str = INCIDENT, **extra: str) -> dict[str, str]:
    return {"incident_id": incident_id, "event_id": "e-1", "content_type": "image/jpeg", **extra}


def envelope(data: bytes = JPEG_BYTES, **changes: object) -> bytes:
    body: dict[str, object] = {
        "incident_id": INCIDENT,
        "event_id": "e-1",
        "content_type": "image/jpeg",
        "data_b64": base64.b64encode(data).decode(),
    }
    body.update(changes)
    return json.dumps(body).encode()


def add_evidence(store: Store, tmp_path: Path, data: bytes, properties: dict[str, str] | None = None) -> IngestResult:
    with store.session() as session:
        result = ingest_evidence(session, TOPIC, data, properties, tmp_path / "evidence")
        session.commit()
        return result


def add_incident(store: Store) -> None:
    with store.session() as session:
        ingest_incident(session, TOPIC, payload(make_event(INCIDENT)), load_categories(), Roster())
        session.commit()


def the_case(store: Store) -> Case:
    with store.session() as session:
        return session.scalars(select(Case)).one()


@pytest.mark.parametrize("case_first", [True, False], ids=["case-first", "snapshot-first"])
@pytest.mark.parametrize("transport", ["mqtt5-properties", "json-envelope"])
def test_snapshot_linked_to_case_in_either_order(
    store: Store, tmp_path: Path, case_first: bool, transport: str
) -> None:
    data, properties = (JPEG_BYTES, props()) if transport == "mqtt5-properties" else (envelope(), None)
    if case_first:
        add_incident(store)
    result = add_evidence(store, tmp_path, data, properties)
    if not case_first:
        add_incident(store)

    assert result.kind == "evidence"
    case = the_case(store)
    expected = tmp_path / "evidence" / f"{INCIDENT}.jpg"
    assert case.snapshot_path == str(expected.resolve())
    assert case.snapshot_sha256 == hashlib.sha256(JPEG_BYTES).hexdigest()
    assert expected.read_bytes() == JPEG_BYTES
    assert [p.name for p in expected.parent.iterdir()] == [expected.name]  # no temp files left


def test_first_snapshot_wins(store: Store, tmp_path: Path) -> None:
    second = JPEG_BYTES + b"later"
    first_result = add_evidence(store, tmp_path, JPEG_BYTES, props())
    second_result = add_evidence(store, tmp_path, second, props(event_id="e-2"))

    assert (first_result.kind, second_result.kind) == ("evidence", "duplicate")
    assert (tmp_path / "evidence" / f"{INCIDENT}.jpg").read_bytes() == JPEG_BYTES
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(EvidenceRow)) == 1


@pytest.mark.parametrize(
    ("data", "properties", "fragment"),
    [
        (b"GIF89a....", props(), "not a JPEG"),
        (JPEG_BYTES, props(content_type="image/png"), "image/png"),
        (JPEG_BYTES, props(incident_id="../../etc/passwd"), "not a valid incident id"),
        (JPEG_BYTES, None, "not a JSON envelope"),
        (envelope(data_b64="***not base64***"), None, "base64"),
        (envelope(data=b"plain text"), None, "not a JPEG"),
        (envelope(incident_id="short"), None, "not a JSON envelope"),
        (envelope(extra="field"), None, "not a JSON envelope"),
    ],
    ids=[
        "not-jpeg",
        "wrong-content-type",
        "path-traversal",
        "raw-bytes-without-properties",
        "bad-base64",
        "envelope-not-jpeg",
        "envelope-bad-id",
        "envelope-extra-field",
    ],
)
def test_bad_evidence_goes_to_dead_letters(
    store: Store, tmp_path: Path, data: bytes, properties: dict[str, str] | None, fragment: str
) -> None:
    result = add_evidence(store, tmp_path, data, properties)

    assert result.kind == "dead_letter"
    assert result.error is not None and fragment in result.error
    with store.session() as session:
        letter = session.scalars(select(DeadLetter)).one()
        assert letter.payload == data
        assert session.scalar(select(func.count()).select_from(EvidenceRow)) == 0
    assert not (tmp_path / "evidence").exists() or not any((tmp_path / "evidence").iterdir())
