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
from gridwatch.central.ingest import IngestResult, ingest_evidence, ingest_incident, write_files
from gridwatch.central.roster import Roster
from gridwatch.central.store import Case, DeadLetter, EvidenceRow, Store
from tests.central.factories import JPEG_BYTES, jpeg_props, make_event, payload, topic_of

TOPIC = "gridwatch/v1/site-1/gw-1/cam-1/evidence"
INCIDENT = "inc-evidence1"


def props(incident_id: str = INCIDENT, data: bytes = JPEG_BYTES, **extra: str) -> dict[str, str]:
    return jpeg_props(incident_id, data, **extra)


def envelope(data: bytes = JPEG_BYTES, **changes: object) -> bytes:
    body: dict[str, object] = {
        "incident_id": INCIDENT,
        "event_id": "e-1",
        "content_type": "image/jpeg",
        "sha256": hashlib.sha256(data).hexdigest(),
        "data_b64": base64.b64encode(data).decode(),
    }
    body.update(changes)
    return json.dumps(body).encode()


def add_evidence(store: Store, tmp_path: Path, data: bytes, properties: dict[str, str] | None = None,
                 topic: str = TOPIC) -> IngestResult:
    with store.session() as session:
        result = ingest_evidence(session, topic, data, properties, tmp_path / "evidence")
        session.commit()
    write_files(result)
    return result


def add_incident(store: Store, **overrides: object) -> IngestResult:
    event = make_event(INCIDENT, **overrides)  # type: ignore[arg-type]
    with store.session() as session:
        result = ingest_incident(session, topic_of(event), payload(event), load_categories(), Roster())
        session.commit()
        return result


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
    second_result = add_evidence(store, tmp_path, second, props(data=second, event_id="e-2"))

    assert (first_result.kind, second_result.kind) == ("evidence", "duplicate")
    assert (tmp_path / "evidence" / f"{INCIDENT}.jpg").read_bytes() == JPEG_BYTES
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(EvidenceRow)) == 1


@pytest.mark.parametrize(
    ("data", "properties", "fragment"),
    [
        (b"GIF89a....", props(data=b"GIF89a...."), "not a JPEG"),
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


# --- issue 8, hole 2: evidence is verified, capped and bound to the camera that owns the incident ---------------


@pytest.mark.parametrize(
    ("data", "properties", "fragment"),
    [
        (JPEG_BYTES, props(sha256="0" * 64), "does not match the bytes"),
        (JPEG_BYTES, {k: v for k, v in props().items() if k != "sha256"}, "no sha256"),
        (envelope(sha256="1" * 64), None, "does not match the bytes"),
        (JPEG_BYTES + bytes(5 * 1024 * 1024), props(data=JPEG_BYTES + bytes(5 * 1024 * 1024)), "limit"),
    ],
    ids=["wrong-hash", "no-hash", "envelope-wrong-hash", "too-large"],
)
def test_unverifiable_evidence_is_refused(
    store: Store, tmp_path: Path, data: bytes, properties: dict[str, str] | None, fragment: str
) -> None:
    result = add_evidence(store, tmp_path, data, properties)

    assert result.kind == "dead_letter" and result.error is not None and fragment in result.error
    assert not (tmp_path / "evidence").exists() or not any((tmp_path / "evidence").iterdir())


def test_evidence_from_another_camera_is_refused_for_an_existing_case(store: Store, tmp_path: Path) -> None:
    add_incident(store)
    result = add_evidence(store, tmp_path, JPEG_BYTES, props(), topic="gridwatch/v1/site-2/gw-9/cam-1/evidence")

    assert result.kind == "dead_letter" and result.error is not None and "belongs to site-1/gw-1/cam-1" in result.error
    assert the_case(store).snapshot_path is None


def test_a_planted_snapshot_is_dropped_when_the_real_camera_opens_the_case(store: Store, tmp_path: Path) -> None:
    planted = JPEG_BYTES + b"planted"
    add_evidence(store, tmp_path, planted, props(data=planted), topic="gridwatch/v1/site-2/gw-9/cam-1/evidence")
    add_incident(store)
    assert the_case(store).snapshot_path is None
    assert not (tmp_path / "evidence" / f"{INCIDENT}.jpg").exists()

    real = add_evidence(store, tmp_path, JPEG_BYTES, props())

    assert real.kind == "evidence"
    assert (tmp_path / "evidence" / f"{INCIDENT}.jpg").read_bytes() == JPEG_BYTES
    assert the_case(store).snapshot_sha256 == hashlib.sha256(JPEG_BYTES).hexdigest()


def test_no_file_is_written_when_the_commit_fails(store: Store, tmp_path: Path) -> None:
    with store.session() as session:
        result = ingest_evidence(session, TOPIC, JPEG_BYTES, props(), tmp_path / "evidence")
        session.rollback()  # the commit failed: the row is gone, and no file was ever written
    assert result.kind == "evidence" and result.write is not None
    assert not (tmp_path / "evidence").exists() or not any((tmp_path / "evidence").iterdir())


def test_a_redelivery_after_a_crash_before_the_file_write_rewrites_it(store: Store, tmp_path: Path) -> None:
    with store.session() as session:
        ingest_evidence(session, TOPIC, JPEG_BYTES, props(), tmp_path / "evidence")
        session.commit()  # crash here: committed, the file never written, the message never acknowledged
    again = add_evidence(store, tmp_path, JPEG_BYTES, props())

    assert again.kind == "duplicate"
    assert (tmp_path / "evidence" / f"{INCIDENT}.jpg").read_bytes() == JPEG_BYTES


def test_partial_files_are_swept_at_start_up(tmp_path: Path) -> None:
    from gridwatch.central.ingest import sweep_partial_files

    folder = tmp_path / "evidence"
    folder.mkdir()
    (folder / ".inc-1.jpg.abc123.tmp").write_bytes(b"half")
    (folder / "inc-2.jpg").write_bytes(JPEG_BYTES)

    assert sweep_partial_files(folder) == 1
    assert [p.name for p in folder.iterdir()] == ["inc-2.jpg"]


def test_held_evidence_for_an_incident_that_never_arrives_expires(store: Store, tmp_path: Path) -> None:
    from datetime import timedelta

    from gridwatch.central.ingest import EVIDENCE_HOLD_S, expire_held_evidence
    from gridwatch.central.store import utcnow

    add_evidence(store, tmp_path, JPEG_BYTES, props())
    with store.session() as session:
        assert expire_held_evidence(session, utcnow()) == 0
        assert expire_held_evidence(session, utcnow() + timedelta(seconds=EVIDENCE_HOLD_S + 1)) == 1
        session.commit()
        assert session.scalar(select(func.count()).select_from(EvidenceRow)) == 0
    assert not (tmp_path / "evidence" / f"{INCIDENT}.jpg").exists()
