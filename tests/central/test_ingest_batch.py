"""The batch ingest path (`central.ingest_batch`, issue 8) against the reference (`ingest_incident`, one savepoint
per message): the same batches into two fresh stores must leave the same rows, case numbers, timelines,
assignments and dead letters, and give the same results, on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

import gridwatch.central.handler as handler_module
import gridwatch.central.ingest_batch as ingest_batch_module
from gridwatch.central import pg_bulk
from gridwatch.central.categories import load_categories
from gridwatch.central.handler import MessageHandler
from gridwatch.central.ingest import IngestResult
from gridwatch.central.roster import Roster
from gridwatch.central.store import (
    Case,
    CaseDraft,
    DeadLetter,
    DispatchRow,
    EventRow,
    EvidenceRow,
    GatewayRow,
    Store,
    TimelineRow,
    open_store,
)
from gridwatch.central.transport import Inbound
from tests.central.factories import GRID_A, JPEG_BYTES, jpeg_props, lifecycle, make_event, payload

Twin = tuple[MessageHandler, MessageHandler]
ROSTER = Roster(default_cleaner="desk", cells={GRID_A: "cleaner-a"})
CASE_SKIP = {"id", "created_at", "updated_at", "snapshot_path"}


def handler(store: Store, evidence_dir: Path, batched: bool) -> MessageHandler:
    made = MessageHandler(store, load_categories(), ROSTER, prefix="gridwatch/v1", evidence_dir=evidence_dir)
    made.batch_incidents = batched
    return made


def incident(e: Any, **topic: str) -> Inbound:
    levels = {"site": e.site_id, "gateway": e.gateway_id, "camera": e.camera_id, **topic}
    return Inbound(f"gridwatch/v1/{levels['site']}/{levels['gateway']}/{levels['camera']}/incident", payload(e))


def evidence(incident_id: str, site: str = "site-1", gateway: str = "gw-1", camera: str = "cam-1") -> Inbound:
    return Inbound(f"gridwatch/v1/{site}/{gateway}/{camera}/evidence", JPEG_BYTES, properties=jpeg_props(incident_id))


def everything(store: Store) -> dict[str, Any]:
    """Every row that matters, without surrogate ids, wall-clock times and the evidence folder."""
    with store.session() as s:
        cases = {}
        for c in s.scalars(select(Case)):
            columns = {k: v for k, v in vars(c).items() if not k.startswith("_") and k not in CASE_SKIP}
            columns["snapshot"] = Path(c.snapshot_path).name if c.snapshot_path else None
            columns["timeline"] = [(t.step, t.detail) for t in c.timeline]
            cases[c.incident_id] = columns
        assignments = []
        for row in s.scalars(select(DispatchRow).order_by(DispatchRow.id)):
            body = {k: v for k, v in json.loads(row.payload).items() if k not in ("assignment_id", "assigned_at")}
            assignments.append((row.topic, body))
        return {
            "cases": cases,
            "timeline_rows": len(list(s.scalars(select(TimelineRow)))),
            "events": sorted((e.event_id, e.incident_id, e.seq, e.phase, e.topic, e.payload)
                             for e in s.scalars(select(EventRow))),
            "letters": [(d.topic, d.error, d.payload, d.payload_size, d.payload_sha256)
                        for d in s.scalars(select(DeadLetter).order_by(DeadLetter.id))],
            "assignments": assignments,
            "gateways": sorted((g.gateway_id, g.site_id) for g in s.scalars(select(GatewayRow))),
            "evidence": sorted((e.incident_id, e.sha256, e.site_id, e.gateway_id, e.camera_id)
                               for e in s.scalars(select(EvidenceRow))),
        }


def summary(results: list[IngestResult | None]) -> list[tuple[Any, ...]]:
    return [(r.kind, r.incident_id, r.event_id, r.case_number, r.error, r.dispatch is not None) if r else None
            for r in results]


@pytest.fixture
def twin(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Twin]:
    """A batch-path handler on the parametrised store and a reference handler on a store of the same kind, both on
    a stopped clock (the seq plausibility check counts seconds: a slower store would allow more)."""
    stopped = datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)
    for module in (handler_module, ingest_batch_module):
        monkeypatch.setattr(module, "utcnow", lambda: stopped)
    with open_store(db_url) as batch_store:
        if db_url.startswith("postgresql"):
            yield from _pg_twin(batch_store, tmp_path)
            return
        with open_store(f"sqlite:///{tmp_path / 'reference.db'}") as reference_store:
            yield (handler(batch_store, tmp_path / "ev-batch", True),
                   handler(reference_store, tmp_path / "ev-reference", False))


def _pg_twin(batch_store: Store, tmp_path: Path) -> Iterator[Twin]:
    """The reference on PostgreSQL too: a second fresh schema next to the first."""
    from tests.central.conftest import fresh_pg_schema

    with fresh_pg_schema() as url, open_store(url) as reference_store:
        yield (handler(batch_store, tmp_path / "ev-batch", True),
               handler(reference_store, tmp_path / "ev-reference", False))


def run_both(twin: Twin, batches: list[list[Inbound]]) -> dict[str, Any]:
    """The same batches through both; the batch path must never have fallen back to one savepoint per message
    (that would hide its mistakes behind the reference's results)."""
    batched, reference = twin
    fallbacks: list[logging.LogRecord] = []
    watcher = logging.Handler(logging.WARNING)
    watcher.emit = fallbacks.append  # type: ignore[method-assign]
    logging.getLogger("gridwatch.central").addHandler(watcher)
    try:
        for batch in batches:
            assert summary(batched.handle_batch(batch)) == summary(reference.handle_batch(batch))
    finally:
        logging.getLogger("gridwatch.central").removeHandler(watcher)
    assert [r.getMessage() for r in fallbacks if "batch path failed" in r.getMessage()] == []
    after = everything(batched.store)
    assert after == everything(reference.store)
    assert batched.tally.snapshot() == reference.tally.snapshot()
    return after


def hard_batch() -> list[Inbound]:
    """A batch with every path of `ingest_incident` in it, several within one incident."""
    a = lifecycle("inc-hard-0001", updates=3)  # started, 3 x updated, ended (gone)
    litter = {"incident_type": "littering"}  # auto-filed
    b = [make_event("inc-hard-0002", 0, "started", **litter),
         make_event("inc-hard-0002", 1, "ended", end_reason="shutdown", **litter),
         make_event("inc-hard-0002", 2, "updated", **litter)]  # the camera sees it again
    jump = make_event("inc-hard-0001", 10_000, "updated")  # implausible seq
    other_gw = make_event("inc-hard-0003", gateway_id="gw-2")
    moved_gw = make_event("inc-hard-0004", gateway_id="gw-2", site_id="site-2")  # gw-2 was first seen in site-1
    cleaner = make_event("inc-hard-0005", gateway_id="cleaner-a")
    hijack = make_event("inc-hard-0001", 4, "updated", camera_id="cam-9")  # another camera's update
    return [
        incident(a[0]), incident(a[2]), incident(a[1]),  # seq 1 after seq 2: stale
        incident(make_event("inc-hard-0001", 2, "updated")),  # another event with seq 2: stale too
        incident(a[0]),  # duplicate within the batch
        incident(b[0]), incident(b[1]), incident(b[2]), incident(jump), incident(other_gw), incident(moved_gw),
        incident(cleaner), incident(hijack),
        Inbound("gridwatch/v1/site-1/gw-1/cam-1/incident", b"{not json"),
        Inbound("gridwatch/v1/site-1/gw-1/incident", payload(make_event("inc-hard-0006"))),  # bad topic shape
        incident(make_event("inc-hard-0007"), site="site-2"),  # payload and topic disagree
        incident(a[3]), incident(a[4]), incident(a[4]),
    ]


def test_the_batch_path_matches_one_savepoint_per_message(twin: Twin) -> None:
    after = run_both(twin, [hard_batch()])
    kinds = [r[0] if r else None for r in summary(twin[0].handle_batch(hard_batch()))]
    assert kinds.count("created") == 0  # all of it again: duplicates and dead letters only
    assert after["cases"]["inc-hard-0001"]["last_seq"] == 4 and after["cases"]["inc-hard-0001"]["ended_at"]
    assert after["cases"]["inc-hard-0002"]["ended_at"] is None  # seen again after the shutdown end
    assert len(after["letters"]) == 7 and len(after["assignments"]) == 3
    assert after["gateways"] == [("gw-1", "site-1"), ("gw-2", "site-1")]


def test_held_snapshots_and_evidence_between_incidents(twin: Twin) -> None:
    """Evidence messages split a batch into runs; a snapshot held before its case is linked when the batch path
    opens the case, and one planted by another camera is deleted."""
    early, planted = make_event("inc-held-0001"), make_event("inc-held-0002")
    first = [evidence("inc-held-0001"), evidence("inc-held-0002", camera="cam-7"),
             incident(make_event("inc-held-0003"))]
    second = [incident(early), incident(planted), evidence("inc-held-0003"),
              incident(make_event("inc-held-0003", 1, "updated")), evidence("inc-held-0001")]
    after = run_both(twin, [first, second])
    assert after["cases"]["inc-held-0001"]["snapshot"] == "inc-held-0001.jpg"
    assert after["cases"]["inc-held-0002"]["snapshot"] is None
    assert "snapshot_refused" in [step for step, _ in after["cases"]["inc-held-0002"]["timeline"]]
    assert after["cases"]["inc-held-0003"]["snapshot"] == "inc-held-0003.jpg"
    assert [e[0] for e in after["evidence"]] == ["inc-held-0001", "inc-held-0003"]


@pytest.mark.parametrize("seed", [1, 2])
def test_shuffled_redelivered_lifecycles_in_random_batches(
    twin: Twin, seed: int
) -> None:
    """Lifecycles of 12 incidents from two gateways, each event sent once or twice, out of order, cut into batches
    of 1 to 40: the same stores either way."""
    rng = random.Random(seed)
    events = [e for i in range(12) for e in lifecycle(f"inc-rand-{i:04d}", updates=rng.randint(0, 4),
                                                      gateway_id=f"gw-{i % 2 + 1}")]
    sent = [incident(e) for e in events for _ in range(rng.choice((1, 1, 2)))]
    sent = sorted(sent, key=lambda _m: rng.random()) if seed == 1 else _nearly_sorted(sent, rng)
    batches = []
    while sent:
        size = rng.randint(1, 40)
        batches.append(sent[:size])
        sent = sent[size:]
    after = run_both(twin, batches)
    assert len(after["cases"]) == 12 and len(after["events"]) == len(events)


def _nearly_sorted(msgs: list[Inbound], rng: random.Random) -> list[Inbound]:
    out = list(msgs)
    for _ in range(len(out) // 3):
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


def test_a_run_takes_a_few_statements_not_several_per_message(store: Store, tmp_path: Path) -> None:
    """What makes it fast: 100 messages (25 new cases) in well under one statement per message."""
    statements, results = _run_counting(store, tmp_path, "inc-cost", 25)
    assert [r.kind if r else None for r in results].count("created") == 25
    assert len(statements) <= 20, statements


def test_the_statements_of_a_run_do_not_grow_with_it(store: Store, tmp_path: Path) -> None:
    """Issue 8 regression guard: a run of 8 messages and one of 400 (new cases, and updates of cases opened by an
    earlier run) take the same statements, each table read and written once, and build no ORM `Case` (an ORM
    instance per case cost more CPU than the rest of the decision)."""
    built: list[object] = []

    def on_init(target: object, *_a: Any) -> None:
        built.append(target)

    event.listen(Case, "init", on_init)
    try:
        _run_counting(store, tmp_path, "inc-first", 1)  # the gateway's first message binds it to its site
        small, _ = _run_counting(store, tmp_path, "inc-small", 2)
        large, results = _run_counting(store, tmp_path, "inc-large", 100)
        again, _ = _run_counting(store, tmp_path, "inc-large", 100, first_seq=4)  # updates of loaded cases
    finally:
        event.remove(Case, "init", on_init)
    assert [r.kind if r else None for r in results].count("created") == 100
    assert built == []
    assert small == large and len(large) == len(set(large)) and "INSERT INTO events" in large, large
    assert "UPDATE cases SET" in again and "INSERT INTO cases" not in again and len(again) == len(set(again)), again


def test_a_postgresql_run_waits_on_the_server_three_times(pg_url: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Round trips, not only statements: 400 messages (100 new cases, their updates and ends) send their savepoint
    and reads in one pipelined exchange, the case counter in a second, every write, the assignments and the release
    in a third; no statement waits on its own (each wait on a busy machine is the server's turn on a core and, for
    the worker, the GIL back from the network thread)."""
    waits: list[str] = []
    real_run = pg_bulk.Pipeline.run

    def run(self: pg_bulk.Pipeline, statements: Any, meanwhile: Any = None) -> Any:
        waits.append(f"pipeline of {len(statements)}")
        return real_run(self, statements, meanwhile)

    def alone(conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        if conn.connection.driver_connection.pgconn.pipeline_status == 0:  # not in a pipeline: a round trip
            waits.append(" ".join(statement.split()[:3]))

    monkeypatch.setattr(pg_bulk.Pipeline, "run", run)
    with open_store(pg_url) as store:
        _run_counting(store, tmp_path, "inc-trip-first", 1)
        waits.clear()
        event.listen(store.engine, "before_cursor_execute", alone)
        _, results = _run_counting(store, tmp_path, "inc-trip", 100)
        event.remove(store.engine, "before_cursor_execute", alone)
    assert [r.kind if r else None for r in results].count("created") == 100
    assert waits == ["pipeline of 5", "pipeline of 1", "pipeline of 4"], waits  # writes: 3 tables + release


def _run_counting(store: Store, tmp_path: Path, prefix: str, incidents: int,
                  first_seq: int = 0) -> tuple[list[str], list[IngestResult | None]]:
    """One batch of `incidents` x 4 events (from `first_seq` on) through the batch path: the statements it sent
    (their first three words: `INSERT INTO events`) and the results."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        statements.append(" ".join(statement.split()[:3]))

    msgs = [incident(make_event(f"{prefix}-{i:04d}", seq, "updated" if seq else "started"))
            for i in range(incidents) for seq in range(first_seq, first_seq + 4)]
    batched = handler(store, tmp_path / "ev", True)
    event.listen(store.engine, "before_cursor_execute", count)
    try:
        results = batched.handle_batch(msgs)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert None not in results and "dead_letter" not in [r.kind for r in results if r]
    return statements, results


def test_the_batch_paths_plain_case_has_the_columns_of_the_orm_case() -> None:
    """`CaseDraft` mirrors `Case`'s columns (names and nullability), so a column added to one is not lost by the
    batch path's Core statements."""
    columns = {c.key: c.nullable for c in Case.__table__.columns}
    fields = {f.name: f for f in dataclasses.fields(CaseDraft)}
    assert set(fields) == set(columns)
    nullable = {name for name, f in fields.items() if "None" in str(f.type)}
    assert nullable == {name for name, null in columns.items() if null} | {"id"}
