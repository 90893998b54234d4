"""Ingest a run of incident messages with a handful of statements instead of several per message (issue 8).

`ingest_incident_batch(session, messages, ...)` gives the same results, rows and case states as calling
`ingest.ingest_incident` on each message in order (the reference; `tests/central/test_ingest_batch.py` compares
the two), but reads what the run needs in one query per table (events already stored, gateways, the cases of its
incidents, locked `FOR UPDATE` in incident order, held snapshots), decides every message in Python, and writes
with one multi-row statement per table (one counter upsert per intake day numbers all new cases).

What keeps it cheap per message (issue 8: central's CPU per message is what limits its ingest rate on a shared
machine): the statements are built once at import and run on the transaction's connection (SQLAlchemy Core: no
ORM session bookkeeping and no statement compilation per run), the `IN (...)` lists are expanding parameters (one
cached statement whatever the run's length), and cases are plain `CaseDraft` objects rather than ORM instances.
On PostgreSQL the rows go as one array per column (`central.pg_bulk`: a short statement psycopg converts once and
the server prepares, instead of a multi-row VALUES with thousands of placeholders converted on every run).

On PostgreSQL the run also waits on the server only three times (`pg_bulk.Pipeline`, libpq pipeline mode): its
savepoint and reads go together, then the case counter (when it opens cases), then every write, the new cases'
assignments and the savepoint's release; a new case's timeline rows take its id in the same statement that inserts
it (a data-modifying CTE), so no `RETURNING` has to come back first.

It never commits and catches no database error: it works in a savepoint of its own, rolls that back on any failure
and raises (a lost server as SQLAlchemy's `OperationalError`, with the connection invalidated). The handler then
retries the batch (an outage), or ingests the same messages one savepoint each with `ingest_incident` (another
instance won a write race, a value the database refuses, a bug), so a bad message is still dead-lettered alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from copy import copy
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from gridwatch.central import pg_bulk
from gridwatch.central.categories import CategoryTable
from gridwatch.central.dispatch import OUTBOX, assignment_rows, build_assignment, enqueue_assignments
from gridwatch.central.ingest import (
    IngestResult,
    ResultKind,
    apply_event,
    dead_letter_row,
    event_row,
    intake,
    link_snapshot,
    new_case,
    stale_detail,
    upsert_for,
    validation_summary,
)
from gridwatch.central.roster import Roster
from gridwatch.central.store import (
    Case,
    CaseCounter,
    CaseDraft,
    DeadLetter,
    EventRow,
    EvidenceRow,
    GatewayRow,
    TimelineRow,
    utcnow,
)
from gridwatch.central.trust import (
    MAX_INCIDENT_BYTES,
    TrustError,
    check_account,
    check_case_owner,
    check_matches_topic,
    check_seq_plausible,
    check_size,
    edge_topic,
)
from gridwatch.wire.events import IncidentEvent
from gridwatch.wire.topics import EdgeTopic

IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits

CASES: Table = Case.__table__  # type: ignore[assignment]
EVENTS: Table = EventRow.__table__  # type: ignore[assignment]
GATEWAYS: Table = GatewayRow.__table__  # type: ignore[assignment]
EVIDENCE: Table = EvidenceRow.__table__  # type: ignore[assignment]
TIMELINE: Table = TimelineRow.__table__  # type: ignore[assignment]
LETTERS: Table = DeadLetter.__table__  # type: ignore[assignment]
COUNTERS: Table = CaseCounter.__table__  # type: ignore[assignment]
CASE_COLUMNS = tuple(c.key for c in CASES.columns if c.key != "id")

# Built once (module docstring); `ids` is an expanding IN list
_STORED = select(EVENTS.c.event_id).where(EVENTS.c.event_id.in_(bindparam("ids", expanding=True)))
_GATEWAYS = select(GATEWAYS.c.gateway_id, GATEWAYS.c.site_id).where(
    GATEWAYS.c.gateway_id.in_(bindparam("ids", expanding=True)))
# incident order: two instances that lock overlapping runs take the locks in the same order
_CASES = (select(CASES).where(CASES.c.incident_id.in_(bindparam("ids", expanding=True)))
          .order_by(CASES.c.incident_id).with_for_update())
_HELD = select(EVIDENCE).where(EVIDENCE.c.incident_id.in_(bindparam("ids", expanding=True)))
_INSERT_CASES = insert(CASES).returning(CASES.c.id, CASES.c.incident_id)
_UPDATE_CASES = update(CASES).where(CASES.c.id == bindparam("case_id")).values(
    {key: bindparam(key) for key in CASE_COLUMNS})
_INSERT = {table.name: insert(table) for table in (GATEWAYS, EVENTS, TIMELINE, LETTERS)}
_NUMBER: dict[str, Insert] = {}  # the counter upsert, per dialect
ALL_CASE_COLUMNS = tuple(c.key for c in CASES.columns)
EVIDENCE_COLUMNS = tuple(c.key for c in EVIDENCE.columns)
PG_SAVEPOINT = "gw_ingest_run"
_NO_CASE = f"NOT EXISTS (SELECT 1 FROM {CASES.name} WHERE {CASES.name}.incident_id = {EVIDENCE.name}.incident_id)"
_PG_NUMBER = (f"INSERT INTO {COUNTERS.name} (day, last) VALUES (%(day)s, %(n)s) ON CONFLICT (day) "
              f"DO UPDATE SET last = {COUNTERS.name}.last + excluded.last RETURNING last")

T = TypeVar("T")


@dataclass
class _Parsed:
    """A message that passed the checks needing no database: its topic's levels, its event, and the event's id and
    payload as the store keeps them (made once: `str(UUID)` and the decoding were called 4 and 2 times per message)."""

    topic: str
    payload: bytes
    where: EdgeTopic
    event: IncidentEvent
    event_id: str
    text: str


@dataclass
class _Outcome:
    """What one message did; turned into its `IngestResult` once new cases have their numbers."""

    kind: ResultKind
    now: datetime
    event: IncidentEvent | None = None
    case: CaseDraft | None = None
    error: str | None = None
    opened: CaseDraft | None = None  # a new case as it was opened (for its assignment)
    event_id: str | None = None


ParsedIncident = _Parsed | _Outcome  # what `parse_incident` makes of one message


@dataclass
class _Run:
    """The state of one run: what the database held, and what the run adds or changes."""

    stored: set[str] = field(default_factory=set)  # event ids already stored or stored earlier in the run
    gateway_sites: dict[str, str] = field(default_factory=dict)
    cases: dict[str, CaseDraft] = field(default_factory=dict)  # by incident id: loaded, then as changed in the run
    held: dict[str, EvidenceRow] = field(default_factory=dict)  # snapshots held for incidents with no case yet
    new_gateways: list[dict[str, Any]] = field(default_factory=list)
    new_cases: list[CaseDraft] = field(default_factory=list)
    changed: dict[str, CaseDraft] = field(default_factory=dict)  # loaded cases the run changed
    events: list[dict[str, Any]] = field(default_factory=list)
    steps: list[tuple[CaseDraft, dict[str, Any]]] = field(default_factory=list)
    letters: list[dict[str, Any]] = field(default_factory=list)
    refused_snapshots: list[EvidenceRow] = field(default_factory=list)
    cleaners: frozenset[str] = frozenset()  # the roster's cleaner accounts, built once per run (not per message)

    def note(self, case: CaseDraft, at: datetime, step: str, detail: str = "") -> None:
        self.steps.append((case, {"at": at, "step": step, "detail": detail}))


def ingest_incident_batch(
    session: Session,
    messages: Sequence[tuple[str, bytes]],
    categories: CategoryTable,
    roster: Roster,
    *,
    prefix: str,
    clock: Callable[[], datetime] | None = None,
    dispatch_prefix: str | None = None,
    parsed: Sequence[ParsedIncident | None] | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> list[IngestResult]:
    """Ingest `(topic, payload)` incident messages in order in the caller's transaction; one result each.

    The same outcomes as `ingest_incident` on each in turn (see the module docstring), all in one savepoint of the
    caller's transaction: on any error it is rolled back (nothing of the run stays) and the error raised, leaving the
    caller to fall back or retry. With `dispatch_prefix`, the assignments of the cases the run opens are added to the
    dispatch outbox in the same savepoint (`dispatch.enqueue_assignments`). `clock` gives each message's time
    (default: `store.utcnow`).

    `parsed`: what `parse_incident` already made of each message (None: parse it here). `meanwhile`: called once
    PostgreSQL has the run's writes, before waiting for them (the service parses its next batch there).
    """
    clock = clock or utcnow
    ready = parsed if parsed is not None else [None] * len(messages)
    checked = [done if done is not None else parse_incident(topic, payload, prefix, clock())
               for (topic, payload), done in zip(messages, ready, strict=True)]
    if session.get_bind().dialect.name == "postgresql":
        return _pg_ingest(session.connection(), checked, messages, categories, roster, clock, dispatch_prefix,
                          meanwhile)
    with session.begin_nested():
        conn = session.connection()  # inside: the savepoint is made when the nested transaction first needs it
        run = _load(conn, [p for p in checked if isinstance(p, _Parsed)])
        outcomes = _decide_all(run, checked, messages, categories, roster, clock)
        _number_cases(conn, run)
        _write(conn, run)
        results = [_result(outcome) for outcome in outcomes]
        if dispatch_prefix is not None:
            enqueue_assignments(session, dispatch_prefix, [r.dispatch for r in results if r.dispatch is not None])
    return results


def _decide_all(run: _Run, parsed: list[ParsedIncident], messages: Sequence[tuple[str, bytes]],
                categories: CategoryTable, roster: Roster, clock: Callable[[], datetime]) -> list[_Outcome]:
    """Every message's outcome against the run's state, in order; the dead letters' rows noted in the run."""
    run.cleaners = roster.cleaners()
    outcomes = [p if isinstance(p, _Outcome) else _decide(run, p, categories, roster, clock()) for p in parsed]
    for outcome, (topic, payload) in zip(outcomes, messages, strict=True):
        if outcome.kind == "dead_letter":
            run.letters.append(dead_letter_row(topic, payload, outcome.error or "", outcome.now))
    return outcomes


# --- PostgreSQL: three pipelined round trips -------------------------------------------------------------------
def _pg_ingest(conn: Connection, parsed: list[ParsedIncident], messages: Sequence[tuple[str, bytes]],
               categories: CategoryTable, roster: Roster, clock: Callable[[], datetime],
               dispatch_prefix: str | None, meanwhile: Callable[[], None] | None = None) -> list[IngestResult]:
    """The run on PostgreSQL in at most three round trips (`pg_bulk.Pipeline`): the savepoint and every read; the
    case counter, when the run opens cases; every write, the assignments and the savepoint's release."""
    pipe = pg_bulk.Pipeline(conn)
    try:
        run = _pg_load(conn, pipe, [p for p in parsed if isinstance(p, _Parsed)])
        outcomes = _decide_all(run, parsed, messages, categories, roster, clock)
        _pg_number_cases(pipe, run)
        results = [_result(outcome) for outcome in outcomes]
        writes = _pg_writes(conn, run)
        if dispatch_prefix is not None:
            rows = assignment_rows(dispatch_prefix, [r.dispatch for r in results if r.dispatch is not None])
            writes += [pg_bulk.insert_statement(conn, OUTBOX, rows)] if rows else []
        pipe.run([*writes, pg_bulk.Statement(f"RELEASE SAVEPOINT {PG_SAVEPOINT}")], meanwhile=meanwhile)
    except BaseException:
        pipe.roll_back_to(PG_SAVEPOINT)
        raise
    return results


def _pg_load(conn: Connection, pipe: pg_bulk.Pipeline, parsed: list[_Parsed]) -> _Run:
    """The savepoint, then one query per table (`= ANY` of one array each), sent together: events already stored,
    the gateways' sites, the cases (locked until the commit, in incident order), snapshots held for incidents
    that have no case."""
    incidents = sorted({p.event.incident_id for p in parsed})
    _, stored, gateways, cases, held = pipe.run([
        pg_bulk.Statement(f"SAVEPOINT {PG_SAVEPOINT}"),
        pg_bulk.select_statement(conn, EVENTS, "event_id", sorted({p.event_id for p in parsed}),
                                 ("event_id",)),
        pg_bulk.select_statement(conn, GATEWAYS, "gateway_id", sorted({p.where.gateway for p in parsed}),
                                 ("gateway_id", "site_id")),
        pg_bulk.select_statement(conn, CASES, "incident_id", incidents, ALL_CASE_COLUMNS, lock=True),
        pg_bulk.select_statement(conn, EVIDENCE, "incident_id", incidents, EVIDENCE_COLUMNS, where=_NO_CASE),
    ])
    run = _Run()
    run.stored.update(r["event_id"] for r in stored)
    run.gateway_sites.update({r["gateway_id"]: r["site_id"] for r in gateways})
    run.cases.update({r["incident_id"]: CaseDraft(**r) for r in cases})
    run.held.update({r["incident_id"]: EvidenceRow(**r) for r in held if r["incident_id"] not in run.cases})
    return run


def _pg_number_cases(pipe: pg_bulk.Pipeline, run: _Run) -> None:
    """`_number_cases` with the counter upserts of every intake day in one round trip."""
    days = _by_day(run.new_cases)
    if not days:
        return
    statements = [pg_bulk.Statement(_PG_NUMBER, {"day": day, "n": len(cases)}, ("last",), [None])
                  for day, cases in days.items()]
    for rows, cases in zip(pipe.run(statements), days.values(), strict=True):
        _assign_numbers(cases, int(rows[0]["last"]))


def _pg_writes(conn: Connection, run: _Run) -> list[pg_bulk.Statement]:
    """`_write`'s statements for one pipelined round trip: new cases and the timeline in one statement (a new
    case's steps take its id from the rows the insert returns, matched on incident id)."""
    statements = []
    if run.new_gateways:
        statements.append(pg_bulk.insert_statement(conn, GATEWAYS, run.new_gateways))
    steps = [{"case_id": case.id, "incident_id": case.incident_id, **step} for case, step in run.steps]
    cases = [_columns(case) for case in run.new_cases]
    if cases and steps:
        statements.append(pg_bulk.insert_with_children(conn, CASES, cases, TIMELINE, steps, fk="case_id",
                                                       by="incident_id"))
    elif cases:
        statements.append(pg_bulk.insert_statement(conn, CASES, cases))
    elif steps:
        statements.append(pg_bulk.insert_statement(conn, TIMELINE, [_no_incident(step) for step in steps]))
    if run.changed:
        statements.append(pg_bulk.update_statement(
            conn, CASES, [{"case_id": case.id, **_columns(case)} for case in run.changed.values()],
            by="case_id", key_column="id"))
    if run.events:
        statements.append(pg_bulk.insert_statement(conn, EVENTS, run.events))
    if run.refused_snapshots:
        for held in run.refused_snapshots:
            Path(held.path).unlink(missing_ok=True)
        statements.append(pg_bulk.Statement(f"DELETE FROM {EVIDENCE.name} WHERE incident_id = ANY(%(ids)s)",
                                            {"ids": [held.incident_id for held in run.refused_snapshots]}))
    if run.letters:
        statements.append(pg_bulk.insert_statement(conn, LETTERS, run.letters))
    return statements


def _no_incident(step: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in step.items() if k != "incident_id"}


# --- reading -------------------------------------------------------------------------------------------------
def parse_incident(topic: str, payload: bytes, prefix: str, now: datetime) -> ParsedIncident:
    """The checks `ingest_incident` makes before it reads the database, in the same order: the message ready for
    `ingest_incident_batch`, or its dead letter at `now`. Pure: it may run before the batch does."""
    try:
        check_size(payload, MAX_INCIDENT_BYTES, "incident payload")
        where = edge_topic(prefix, topic, "incident")
    except TrustError as exc:
        return _Outcome("dead_letter", now, error=f"refused: {exc}")
    try:
        event = IncidentEvent.from_json(payload)
    except ValidationError as exc:
        return _Outcome("dead_letter", now, error=validation_summary(exc))
    return _Parsed(topic, payload, where, event, str(event.event_id), payload.decode("utf-8", errors="replace"))


def _load(conn: Connection, parsed: list[_Parsed]) -> _Run:
    """One query per table for everything the run reads (SQLite; PostgreSQL: `_pg_load`)."""
    run = _Run()
    event_ids = sorted({p.event_id for p in parsed})
    gateways = sorted({p.where.gateway for p in parsed})
    incidents = sorted({p.event.incident_id for p in parsed})
    for chunk in _chunks(event_ids):
        run.stored.update(conn.execute(_STORED, {"ids": chunk}).scalars())
    for chunk in _chunks(gateways):
        run.gateway_sites.update({row.gateway_id: row.site_id for row in conn.execute(_GATEWAYS, {"ids": chunk})})
    for chunk in _chunks(incidents):
        run.cases.update({row.incident_id: CaseDraft(**row._asdict()) for row in conn.execute(_CASES, {"ids": chunk})})
    _load_held(conn, run, [i for i in incidents if i not in run.cases])
    return run


def _load_held(conn: Connection, run: _Run, incidents: list[str]) -> None:
    """Snapshots held for incidents that have no case yet."""
    for chunk in _chunks(incidents):
        run.held.update({row.incident_id: EvidenceRow(**row._asdict()) for row in conn.execute(_HELD, {"ids": chunk})})


def _chunks(items: list[T]) -> Iterator[list[T]]:
    for i in range(0, len(items), IN_CHUNK):
        yield items[i:i + IN_CHUNK]


# --- deciding ------------------------------------------------------------------------------------------------
def _decide(run: _Run, msg: _Parsed, categories: CategoryTable, roster: Roster, now: datetime) -> _Outcome:
    """`ingest_incident` from the duplicate check on, against the run's state instead of the database."""
    event, event_id = msg.event, msg.event_id
    if event_id in run.stored:
        return _Outcome("duplicate", now, event, event_id=event_id)
    try:
        case = _trusted_case(run, event, msg.where, now)
    except TrustError as exc:
        return _Outcome("dead_letter", now, error=f"refused: {exc}")
    run.stored.add(event_id)
    run.events.append(event_row(event, msg.topic, msg.payload, now, event_id=event_id, text=msg.text))
    if case is None:
        case = _open_case(run, event, categories, roster, now)
        return _Outcome("created", now, event, case, opened=copy(case), event_id=event_id)
    if event.seq <= case.last_seq:
        run.note(case, now, "stale", stale_detail(event, case))
        return _Outcome("stale", now, event, case, event_id=event_id)
    apply_event(case, event, now, run.note)
    if case.id is not None:
        run.changed[event.incident_id] = case
    return _Outcome("updated", now, event, case, event_id=event_id)


def _trusted_case(run: _Run, event: IncidentEvent, where: EdgeTopic, now: datetime) -> CaseDraft | None:
    """`ingest._trusted_case` against the run's gateways and cases."""
    check_matches_topic(where, event.site_id, event.gateway_id, event.camera_id)
    check_account(event.gateway_id, run.cleaners)
    site = run.gateway_sites.get(where.gateway)
    if site is None:  # first seen: bound to this site, even if a later check refuses the message
        site = run.gateway_sites[where.gateway] = where.site
        run.new_gateways.append({"gateway_id": where.gateway, "site_id": where.site, "first_seen": now})
    if site != where.site:
        raise TrustError(f"gateway {where.gateway!r} belongs to site {site!r}, not {where.site!r}")
    case = run.cases.get(event.incident_id)
    if case is not None:
        check_case_owner(case, where)
        check_seq_plausible(event.seq, case, now)
    return case


def _open_case(run: _Run, event: IncidentEvent, categories: CategoryTable, roster: Roster,
               now: datetime) -> CaseDraft:
    """A new case (numbered once the run is decided), its intake steps, and any snapshot held for it."""
    case = new_case(CaseDraft, event, categories, roster, now, case_number="")
    run.cases[event.incident_id] = case
    run.new_cases.append(case)
    intake(case, event, categories, now, run.note)
    held = run.held.pop(event.incident_id, None)
    if held is not None and not link_snapshot(case, held, now, run.note):
        run.refused_snapshots.append(held)
    return case


def _columns(case: CaseDraft) -> dict[str, Any]:
    return {key: getattr(case, key) for key in CASE_COLUMNS}


def _number_cases(conn: Connection, run: _Run) -> None:
    """Number the new cases in the order they were opened: one counter upsert per intake day for all of them."""
    for day, cases in _by_day(run.new_cases).items():
        last = int(conn.execute(_number_statement(conn.dialect.name), {"day": day, "n": len(cases)}).scalar_one())
        _assign_numbers(cases, last)


def _by_day(cases: list[CaseDraft]) -> dict[str, list[CaseDraft]]:
    days: dict[str, list[CaseDraft]] = {}
    for case in cases:
        days.setdefault(f"{case.created_at:%Y%m%d}", []).append(case)
    return days


def _assign_numbers(cases: list[CaseDraft], last: int) -> None:
    """`GW-YYYYMMDD-NNNN` for `cases` (one intake day, in opening order), the counter now at `last`."""
    for number, case in enumerate(cases, last - len(cases) + 1):
        case.case_number = f"GW-{case.created_at:%Y%m%d}-{number:04d}"


def _number_statement(dialect: str) -> Insert:
    """`INSERT .. ON CONFLICT DO UPDATE .. RETURNING` that adds `n` to the day's counter (built once per dialect)."""
    if dialect not in _NUMBER:
        stmt = upsert_for(dialect)(COUNTERS).values(day=bindparam("day"), last=bindparam("n"))
        _NUMBER[dialect] = stmt.on_conflict_do_update(
            index_elements=[COUNTERS.c.day], set_={"last": COUNTERS.c.last + bindparam("n")}
        ).returning(COUNTERS.c.last)
    return _NUMBER[dialect]


# --- writing -------------------------------------------------------------------------------------------------
def _write(conn: Connection, run: _Run) -> None:
    """Every row the run adds or changes, one statement per table (rows in the order they were made; SQLite, whose
    `executemany` runs one prepared statement per row in C; PostgreSQL: `_pg_writes`)."""
    _insert(conn, GATEWAYS, run.new_gateways)
    if run.new_cases:
        ids = {row.incident_id: row.id for row in conn.execute(_INSERT_CASES, [_columns(c) for c in run.new_cases])}
        for case in run.new_cases:
            case.id = ids[case.incident_id]
    if run.changed:
        conn.execute(_UPDATE_CASES, [{"case_id": case.id, **_columns(case)} for case in run.changed.values()])
    _insert(conn, EVENTS, run.events)
    _insert(conn, TIMELINE, [{"case_id": case.id, **step} for case, step in run.steps])
    for held in run.refused_snapshots:
        Path(held.path).unlink(missing_ok=True)
        conn.execute(delete(EVIDENCE).where(EVIDENCE.c.incident_id == held.incident_id))
    _insert(conn, LETTERS, run.letters)


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(_INSERT[table.name], rows)


def _result(outcome: _Outcome) -> IngestResult:
    event, case = outcome.event, outcome.case
    if outcome.kind == "dead_letter" or event is None:
        return IngestResult("dead_letter", error=outcome.error)
    incident_id, event_id = event.incident_id, outcome.event_id or str(event.event_id)
    if outcome.kind == "duplicate" or case is None:
        return IngestResult("duplicate", incident_id, event_id)
    if outcome.opened is None:
        return IngestResult(outcome.kind, incident_id, event_id, case.case_number)
    outcome.opened.case_number = case.case_number
    assignment = build_assignment(outcome.opened, outcome.now)
    return IngestResult("created", incident_id, event_id, case.case_number, dispatch=assignment)

