"""Turn received MQTT payloads into stored events, cases and evidence. Pure with respect to MQTT: bytes in.

`ingest_incident` and `ingest_evidence` work inside the caller's session and never commit: the service commits
and only then acknowledges the MQTT message, so a crash before the commit means a redelivery, and the
`event_id` primary key makes that redelivery a harmless `duplicate`.

Bad input never raises: it becomes a `dead_letters` row and a result of kind `dead_letter`.

Case rules:

- one case per `incident_id`, created by the first message that arrives, whatever its phase;
- a message changes the case only when its `seq` is greater than `case.last_seq` (an older `updated` that
  arrives late is stored as an event and noted on the timeline, but does not overwrite newer state);
- only an `ended` with end_reason `gone` (the camera saw it leave) moves the case towards verification. An
  `ended` because the camera stopped watching (`shutdown`, `source_ended`, `stream_lost`; or no reason, from a
  1.0 gateway) is noted on the timeline and sets `ended_at` (the incident is not currently observed), and the
  status stays. A later message of the same incident (a restarted gateway that sees it again continues the
  incident with a higher `seq`) clears `ended_at` and updates the same case;
- the cleaner is assigned from the roster by grid cell when the case is created;
- the first snapshot per incident is kept; it is linked to the case whenever both exist, if the gateway camera
  that sent it opened the case.

Trust (issue 8, `gridwatch.central.trust`): before anything is stored, a message is bound to its topic (the
topic's site/gateway/camera must be the payload's, and the ACL binds the gateway level to the account), its
gateway to the site it was first seen in, its incident to the camera that opened the case, and its `seq` to a
plausible growth. Payloads are size-capped; a snapshot's sha256 is verified against its bytes.

Files: a snapshot's row is committed first and its file written afterwards (`write_files`, temporary name then
rename); a crash in between leaves no orphan file, and the redelivered message rewrites the missing file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, object_session

from gridwatch.central import workflow
from gridwatch.central.categories import CategoryTable
from gridwatch.central.dispatch import build_assignment
from gridwatch.central.roster import Roster
from gridwatch.central.store import (
    Case,
    CaseCounter,
    CaseDraft,
    DeadLetter,
    EventRow,
    EvidenceRow,
    TimelineRow,
    utcnow,
)
from gridwatch.central.trust import (
    MAX_EVIDENCE_BYTES,
    MAX_INCIDENT_BYTES,
    TrustError,
    bind_gateway,
    check_account,
    check_case_owner,
    check_matches_topic,
    check_seq_plausible,
    check_size,
    edge_topic,
)
from gridwatch.errors import GridwatchError
from gridwatch.wire.assignment import CaseAssignment
from gridwatch.wire.events import IncidentEvent
from gridwatch.wire.topics import DEFAULT_PREFIX, EdgeTopic

ResultKind = Literal["created", "updated", "stale", "duplicate", "dead_letter", "evidence"]

MAX_ERROR_CHARS = 2000
DEAD_LETTER_PREFIX_BYTES = 4096
EVIDENCE_HOLD_S = 600.0
EXPIRE_EVERY_S = 60.0
MAX_ENVELOPE_BYTES = MAX_EVIDENCE_BYTES * 4 // 3 + 4096
JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_CONTENT_TYPE = "image/jpeg"
INCIDENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")

# The case rules below work on an ORM `Case` (one message at a time, `ingest_incident`) and on a plain `CaseDraft`
# (the batch path, `ingest_batch`), checked by mypy for each.
C = TypeVar("C", Case, CaseDraft)
Note = Callable[[C, datetime, str, str], None]  # records a timeline step: (case, at, step, detail)


@dataclass(frozen=True)
class IngestResult:
    """What one payload did to the store.

    kind: `created` / `updated` (a new case, or newer state applied), `stale` (stored, but older than the
    case state), `duplicate` (event_id or snapshot already stored: nothing changed), `dead_letter` (bad
    payload, kept in `dead_letters`), `evidence` (a snapshot stored).
    `dispatch` is the assignment to publish after the commit, when the case was just created.
    """

    kind: ResultKind
    incident_id: str | None = None
    event_id: str | None = None
    case_number: str | None = None
    error: str | None = None
    dispatch: CaseAssignment | None = None
    write: tuple[Path, bytes] | None = None


class EvidenceError(GridwatchError, ValueError):
    """An evidence message that cannot be stored (missing ids, not a JPEG, bad envelope)."""


class EvidenceEnvelope(BaseModel):
    """Evidence over MQTT 3.1.1, which has no message properties: the metadata travels in JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: str = Field(min_length=8, max_length=128, pattern=INCIDENT_ID_RE.pattern)
    event_id: str | None = Field(None, max_length=36)
    content_type: str = Field(JPEG_CONTENT_TYPE, max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Of the decoded bytes; verified.")
    data_b64: str = Field(min_length=1)


@dataclass(frozen=True)
class _Evidence:
    incident_id: str
    event_id: str | None
    content_type: str
    data: bytes
    sha256: str | None


# --- dead letters ---------------------------------------------------------------------------------


def dead_letter(session: Session, topic: str, payload: bytes, error: str, now: datetime) -> IngestResult:
    """Keep the reason, the payload's first `DEAD_LETTER_PREFIX_BYTES`, its size and its sha256, and say so."""
    row = dead_letter_row(topic, payload, error, now)
    session.add(DeadLetter(**row))
    return IngestResult("dead_letter", error=row["error"])


def dead_letter_row(topic: str, payload: bytes, error: str, now: datetime) -> dict[str, Any]:
    """The `dead_letters` columns for a payload that could not be processed (bounded: see `dead_letter`)."""
    data = bytes(payload)
    return {"topic": topic[:512], "payload": data[:DEAD_LETTER_PREFIX_BYTES], "error": error[:MAX_ERROR_CHARS],
            "received_at": now, "payload_size": len(data), "payload_sha256": hashlib.sha256(data).hexdigest()}


def validation_summary(exc: ValidationError, limit: int = 5) -> str:
    """`N errors: loc: msg; ...` — short enough to read in the dead-letter listing."""
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']} [{err['type']}]" for err in exc.errors()
    ]
    more = f"; +{len(parts) - limit} more" if len(parts) > limit else ""
    return f"invalid IncidentEvent ({exc.error_count()} errors): " + "; ".join(parts[:limit]) + more


# --- incidents ------------------------------------------------------------------------------------


def ingest_incident(
    session: Session,
    topic: str,
    payload: bytes,
    categories: CategoryTable,
    roster: Roster,
    *,
    prefix: str = DEFAULT_PREFIX,
    now: datetime | None = None,
) -> IngestResult:
    """Store one incident message and create or update its case (see the module docstring)."""
    now = now or utcnow()
    try:
        check_size(payload, MAX_INCIDENT_BYTES, "incident payload")
        where = edge_topic(prefix, topic, "incident")
    except TrustError as exc:
        return dead_letter(session, topic, payload, f"refused: {exc}", now)
    try:
        event = IncidentEvent.from_json(payload)
    except ValidationError as exc:
        return dead_letter(session, topic, payload, validation_summary(exc), now)
    event_id = str(event.event_id)
    if session.get(EventRow, event_id) is not None:
        return IngestResult("duplicate", event.incident_id, event_id)
    try:
        case = _trusted_case(session, event, where, roster, now)
    except TrustError as exc:
        return dead_letter(session, topic, payload, f"refused: {exc}", now)
    session.add(_event_row(event, topic, payload, now))
    if case is None:
        case = _create_case(session, event, categories, roster, now)
        session.flush()
        return IngestResult(
            "created", event.incident_id, event_id, case.case_number, dispatch=build_assignment(case, now)
        )
    if event.seq <= case.last_seq:
        _step(case, now, "stale", stale_detail(event, case))
        return IngestResult("stale", event.incident_id, event_id, case.case_number)
    apply_event(case, event, now, _step)
    return IngestResult("updated", event.incident_id, event_id, case.case_number)


def stale_detail(event: IncidentEvent, case: Case | CaseDraft) -> str:
    return f"{event.phase} seq {event.seq} <= last seq {case.last_seq}: not applied"


def _trusted_case(session: Session, event: IncidentEvent, where: EdgeTopic, roster: Roster,
                  now: datetime) -> Case | None:
    """The event's case (None for a new incident) once every trust check passed; `TrustError` otherwise."""
    check_matches_topic(where, event.site_id, event.gateway_id, event.camera_id)
    check_account(event.gateway_id, roster.cleaners())
    bind_gateway(session, where, now)
    case = _locked_case(session, event.incident_id)
    if case is not None:
        check_case_owner(case, where)
        check_seq_plausible(event.seq, case, now)
    return case


def _locked_case(session: Session, incident_id: str) -> Case | None:
    """The incident's case, row-locked until the commit (PostgreSQL `FOR UPDATE`).

    Two central instances in one share group may handle messages of the same incident at once; the lock
    makes the `seq` comparison and the update atomic, so the newer state cannot be overwritten. SQLite has
    a single writer: a stale snapshot fails the commit, and the service retries the message.
    """
    query = select(Case).where(Case.incident_id == incident_id).with_for_update()
    return session.scalars(query).one_or_none()


def _event_row(event: IncidentEvent, topic: str, payload: bytes, now: datetime) -> EventRow:
    return EventRow(**event_row(event, topic, payload, now))


def event_row(event: IncidentEvent, topic: str, payload: bytes, now: datetime, *, event_id: str | None = None,
              text: str | None = None) -> dict[str, Any]:
    """The `events` columns of a stored incident message (`event_id` / `text`: the event's id and the decoded
    payload, when the caller made them already)."""
    return dict(
        event_id=event_id if event_id is not None else str(event.event_id),
        incident_id=event.incident_id,
        seq=event.seq,
        phase=event.phase,
        topic=topic,
        received_at=now,
        payload=text if text is not None else payload.decode("utf-8", errors="replace"),
    )


def _step(case: Case, at: datetime, step: str, detail: str = "") -> None:
    """Add a step to the case's timeline without loading the steps it already has (`case.timeline.append` would
    read them all on every update of a long-lived incident)."""
    row = TimelineRow(case=case, at=at, step=step, detail=detail)  # the backref queues it on an unloaded list
    session = object_session(case)
    if session is not None:
        session.add(row)


def next_case_number(session: Session, now: datetime) -> str:
    """`GW-YYYYMMDD-NNNN`: the intake day (UTC) and a per-day counter.

    The counter is one atomic `INSERT .. ON CONFLICT DO UPDATE .. RETURNING` on `case_counters`, so central
    instances that create cases at the same instant get different numbers (PostgreSQL holds the row lock
    until the commit; SQLite has a single writer). A rolled-back transaction leaves no gap either.
    """
    day = f"{now:%Y%m%d}"
    insert = upsert_for(session.get_bind().dialect.name)
    stmt = (
        insert(CaseCounter)
        .values(day=day, last=1)
        .on_conflict_do_update(index_elements=[CaseCounter.day], set_={"last": CaseCounter.last + 1})
        .returning(CaseCounter.last)
    )
    number = session.execute(stmt).scalar_one()
    return f"GW-{day}-{number:04d}"


def upsert_for(dialect: str) -> Callable[..., Any]:
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"case numbers need PostgreSQL or SQLite, not {dialect}")


def _create_case(
    session: Session, event: IncidentEvent, categories: CategoryTable, roster: Roster, now: datetime
) -> Case:
    """A new case from the first message of an incident (any phase), with intake steps on its timeline."""
    case = new_case(Case, event, categories, roster, now, next_case_number(session, now))
    case.timeline = []
    session.add(case)
    intake(case, event, categories, now, _step)
    _link_evidence(session, case, now)
    return case


def new_case(kind: type[C], event: IncidentEvent, categories: CategoryTable, roster: Roster, now: datetime,
             case_number: str) -> C:
    """The case (a `Case` or a `CaseDraft`) an incident's first message opens, before its intake steps (`intake`,
    which applies the message with `apply_event`: the state columns set here are the ones it sets); not in any
    session."""
    category = categories.for_type(event.type)
    grid_cell = event.location.grid_cell if event.location else None
    return kind(
        case_number=case_number,
        incident_id=event.incident_id,
        type=event.type,
        category_code=category.code if category else None,
        category_name=category.name if category else None,
        category_version=categories.version,
        status=workflow.next_status(None, "intake") or workflow.REPORTED,
        site_id=event.site_id,
        gateway_id=event.gateway_id,
        camera_id=event.camera_id,
        started_at=event.started_at,
        grid_cell=grid_cell,
        cleaner=roster.cleaner_for(grid_cell),
        last_seq=-1,
        created_at=now,
        last_observed_at=event.observed_at,
        dwell_s=event.dwell_s,
        confidence=event.confidence,
        model_name=event.model.name,
        model_version=event.model.version,
        updated_at=now,
    )


def intake(case: C, event: IncidentEvent, categories: CategoryTable, now: datetime, note: Note[C]) -> None:
    """The intake steps of a new case (`note`d), its auto-filing, and the state of its first message."""
    category = categories.for_type(event.type)
    where = f"{event.site_id}/{event.camera_id}" + (f" zone {event.zone}" if event.zone else "")
    note(case, now, "intake", f"video discovery: {event.type} at {where} (first message: {event.phase})")
    if category is None:
        detail = f"no category for type {event.type!r} in table {categories.version}"
        note(case, now, "uncategorised", detail)
    note(case, now, "assigned", f"cleaner {case.cleaner} (grid cell {case.grid_cell or 'none'})")
    if category is not None and category.auto_file:
        _transition(case, "auto_file", now, f"auto-filed as {category.code} {category.name}", note)
    apply_event(case, event, now, note)


def _transition(case: C, trigger: str, now: datetime, detail: str, note: Note[C]) -> None:
    """Move the case along the workflow when `trigger` applies; record the step."""
    new = workflow.next_status(case.status, trigger)
    if new is not None and new != case.status:
        case.status = new
        note(case, now, new, detail)


def apply_event(case: C, event: IncidentEvent, now: datetime, note: Note[C]) -> None:
    """Copy the state of a message that is newer than the case (`event.seq > case.last_seq`); steps go to `note`."""
    case.zone = event.zone or case.zone
    case.last_observed_at = event.observed_at
    case.dwell_s = event.dwell_s
    case.confidence = event.confidence
    if event.location is not None:
        case.lat, case.lon = event.location.lat, event.location.lon
        case.accuracy_m = event.location.accuracy_m
        case.grid_cell = case.grid_cell or event.location.grid_cell
    case.model_name, case.model_version = event.model.name, event.model.version
    case.last_seq = event.seq
    case.updated_at = now
    if event.phase != "ended" and case.ended_at is not None:
        case.ended_at = None
        note(case, now, "observed", f"camera sees it again (seq {event.seq}): the same incident continues")
    if event.phase == "updated":
        note(case, now, "updated", f"seq {event.seq} dwell {event.dwell_s:.0f}s conf {event.confidence:.2f}")
    if event.phase == "ended":
        _apply_end(case, event, now, note)


def _apply_end(case: C, event: IncidentEvent, now: datetime, note: Note[C]) -> None:
    """Only an end the camera saw (`gone`) moves the case; other ends note that the camera stopped watching."""
    case.ended_at = event.ended_at
    at = f"{event.ended_at:%Y-%m-%dT%H:%M:%SZ}"
    trigger = workflow.end_trigger(event.end_reason)
    if trigger is None:
        reason = event.end_reason or f"reason not given (schema {event.schema_version})"
        note(case, now, "unobserved", f"camera stopped watching: {reason}; seq {event.seq} at {at}; "
                                       f"status stays {case.status}")
        return
    note(case, now, "ended", f"seq {event.seq} at {at}: the camera saw it leave")
    _transition(case, trigger, now, f"incident ended on camera after {event.dwell_s:.0f}s", note)


# --- evidence -------------------------------------------------------------------------------------


def ingest_evidence(
    session: Session,
    topic: str,
    payload: bytes,
    properties: Mapping[str, str] | None,
    evidence_dir: str | Path,
    *,
    prefix: str = DEFAULT_PREFIX,
    now: datetime | None = None,
) -> IngestResult:
    """Store a snapshot JPEG's row and ask for its file `evidence_dir/<incident_id>.jpg` (`result.write`).

    `properties` are the MQTT 5 message properties flattened to strings (`content_type`, and the user
    properties `incident_id`, `event_id`, `sha256`); when they carry no `incident_id` (MQTT 3.1.1), the payload
    must be a JSON `EvidenceEnvelope`. The sha256 must match the bytes, the size is capped, and the topic's
    camera must be the one that opened the case (or, before the case exists, the evidence is held and linked
    only if that camera opens it). The first snapshot per incident wins; later ones are `duplicate`.
    """
    now = now or utcnow()
    try:
        check_size(payload, MAX_ENVELOPE_BYTES, "evidence payload")
        where = edge_topic(prefix, topic, "evidence")
        evidence = _parse_evidence(payload, properties)
        check_size(evidence.data, MAX_EVIDENCE_BYTES, "snapshot")
        case = _locked_case(session, evidence.incident_id)
        if case is not None:
            check_case_owner(case, where)
    except (EvidenceError, TrustError) as exc:
        return dead_letter(session, topic, payload, f"invalid evidence: {exc}", now)
    path = Path(evidence_dir).resolve() / f"{evidence.incident_id}.jpg"
    existing = session.get(EvidenceRow, evidence.incident_id)
    if existing is not None:
        rewrite = (path, evidence.data) if _same_file_missing(existing, evidence, path) else None
        return IngestResult("duplicate", evidence.incident_id, evidence.event_id, write=rewrite)
    session.add(
        EvidenceRow(
            incident_id=evidence.incident_id,
            event_id=evidence.event_id,
            path=str(path),
            sha256=hashlib.sha256(evidence.data).hexdigest(),
            size_bytes=len(evidence.data),
            content_type=evidence.content_type,
            received_at=now,
            site_id=where.site,
            gateway_id=where.gateway,
            camera_id=where.camera,
        )
    )
    session.flush()
    if case is not None:
        _link_evidence(session, case, now)
    number = case.case_number if case else None
    return IngestResult("evidence", evidence.incident_id, evidence.event_id, number, write=(path, evidence.data))


def expire_held_evidence(session: Session, now: datetime, limit: int = 100) -> int:
    """Delete snapshots held longer than `EVIDENCE_HOLD_S` for an incident that never arrived (rows and files).
    The handler runs it at most once per `EXPIRE_EVERY_S`, not per message: the query scans the cases."""
    cutoff = now - timedelta(seconds=EVIDENCE_HOLD_S)
    orphaned = (
        select(EvidenceRow)
        .where(EvidenceRow.received_at < cutoff, ~EvidenceRow.incident_id.in_(select(Case.incident_id)))
        .limit(limit)
    )
    rows = list(session.scalars(orphaned))
    for row in rows:
        Path(row.path).unlink(missing_ok=True)
        session.delete(row)
    return len(rows)


def _same_file_missing(row: EvidenceRow, evidence: _Evidence, path: Path) -> bool:
    """A redelivery after a crash between the commit and the file write: the row is there, the file is not."""
    return row.path == str(path) and not path.exists() and row.sha256 == hashlib.sha256(evidence.data).hexdigest()


def write_files(result: IngestResult) -> None:
    """After the commit: write the snapshot the result asks for (atomically: temporary name, then rename)."""
    if result.write is not None:
        path, data = result.write
        write_atomically(path, data)


def sweep_partial_files(evidence_dir: str | Path) -> int:
    """Delete temporary files a crash left behind in `evidence_dir` (at start-up); returns how many."""
    folder = Path(evidence_dir)
    if not folder.is_dir():
        return 0
    leftovers = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for p in leftovers:
        p.unlink(missing_ok=True)
    return len(leftovers)


def _parse_evidence(payload: bytes, properties: Mapping[str, str] | None) -> _Evidence:
    """Metadata from MQTT 5 properties, or from a JSON envelope; checks the ids, the JPEG magic and the sha256."""
    if properties and properties.get("incident_id"):
        evidence = _Evidence(
            incident_id=properties["incident_id"],
            event_id=properties.get("event_id"),
            content_type=properties.get("content_type") or JPEG_CONTENT_TYPE,
            data=bytes(payload),
            sha256=properties.get("sha256"),
        )
    else:
        evidence = _parse_envelope(payload)
    if not INCIDENT_ID_RE.match(evidence.incident_id):
        raise EvidenceError(f"incident_id {evidence.incident_id[:140]!r} is not a valid incident id")
    if evidence.event_id is not None and len(evidence.event_id) > 36:
        raise EvidenceError("event_id is longer than 36 characters")
    if evidence.content_type != JPEG_CONTENT_TYPE:
        raise EvidenceError(f"content type {evidence.content_type[:64]!r}: only {JPEG_CONTENT_TYPE} is accepted")
    if not evidence.data.startswith(JPEG_MAGIC):
        raise EvidenceError("payload is not a JPEG (no FF D8 FF start-of-image marker)")
    _verify_sha256(evidence)
    return evidence


def _verify_sha256(evidence: _Evidence) -> None:
    if evidence.sha256 is None:
        raise EvidenceError("no sha256 (user property or envelope field): evidence must carry its hash")
    actual = hashlib.sha256(evidence.data).hexdigest()
    if evidence.sha256 != actual:
        raise EvidenceError(f"sha256 {evidence.sha256[:64]!r} does not match the bytes (sha256 {actual})")


def _parse_envelope(payload: bytes) -> _Evidence:
    try:
        envelope = EvidenceEnvelope.model_validate_json(payload)
    except ValidationError as exc:
        raise EvidenceError(
            "no incident_id user property and the payload is not a JSON envelope "
            f'{{"incident_id","event_id","content_type","data_b64"}}: {exc.error_count()} errors'
        ) from exc
    try:
        data = base64.b64decode(envelope.data_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EvidenceError(f"data_b64 is not valid base64: {exc}") from exc
    return _Evidence(envelope.incident_id, envelope.event_id, envelope.content_type, data, envelope.sha256)


def _link_evidence(session: Session, case: Case, now: datetime) -> None:
    """Point the case at the incident's stored snapshot, if there is one, the case has none yet, and the gateway
    camera that sent it is the one that opened the case (a snapshot planted by another camera is deleted)."""
    if case.snapshot_path is not None:
        return
    evidence = session.get(EvidenceRow, case.incident_id)
    if evidence is not None and not link_snapshot(case, evidence, now, _step):
        Path(evidence.path).unlink(missing_ok=True)
        session.delete(evidence)


def link_snapshot(case: C, evidence: EvidenceRow, now: datetime, note: Note[C]) -> bool:
    """Link a held snapshot to its new case; False when another gateway camera sent it (the caller deletes it)."""
    sender = (evidence.site_id, evidence.gateway_id, evidence.camera_id)
    if evidence.gateway_id is not None and sender != (case.site_id, case.gateway_id, case.camera_id):
        note(case, now, "snapshot_refused", f"held snapshot came from {'/'.join(map(str, sender))}: deleted")
        return False
    case.snapshot_path, case.snapshot_sha256 = evidence.path, evidence.sha256
    note(case, now, "snapshot", f"{evidence.size_bytes} bytes sha256 {evidence.sha256[:12]}")
    return True


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file and a rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
