"""The case store: SQLAlchemy 2.0 typed ORM over SQLite (default) or PostgreSQL.

Tables:

- `events`: every incident message stored once; `event_id` (the wire idempotency key) is the primary key, so a
  redelivered message cannot be stored twice even when two central instances race.
- `cases`: one case per `incident_id` (unique), with the latest state applied in `seq` order.
- `case_timeline`: every step of a case (intake, filed, dispatched, updates, ended, snapshot).
- `evidence`: the first snapshot received per incident; kept even when it arrives before the case.
- `case_counters`: the per-day counter behind case numbers (an atomic upsert, safe across instances).
- `dead_letters`: payloads that could not be processed, with the error (a bounded prefix, size and sha256).
- `gateways`: the site each gateway was first seen in (`gridwatch.central.trust`).
- `dispatch_outbox`: case assignments not yet acknowledged by the broker (see `gridwatch.central.dispatch`);
  written in the transaction that creates the case, deleted on PUBACK.
- `api_users`, `api_tokens`, `audit_log`: who may use the HTTP API, their bearer tokens (a hash, never the
  token), and who read or changed what (`gridwatch.central.auth`).

`--db` on the command line takes a file path or a URL (`resolve_db_url`). Read commands open an existing store
(`open_store(url, create=False)`): a missing file or database is a `StoreError`, not a new empty one.

All timestamps are stored in UTC and read back timezone-aware (`UTCDateTime`), on both back ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
    inspect,
    make_url,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, NoSuchModuleError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)
from sqlalchemy.types import TypeDecorator

from gridwatch.central.errors import StoreError

DEFAULT_DB_URL = "sqlite:///gridwatch-central.db"
PING_IDLE_S = 1.0  # a PostgreSQL connection idle in the pool this long is pinged before it is used


def utcnow() -> datetime:
    """The current time, UTC-aware."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so values are stored as naive UTC and tagged on
    the way out. Naive values are refused on the way in: a naive time is a bug upstream.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a timezone")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the central tables."""


class EventRow(Base):
    """One incident message as received (deduplicated on `event_id`)."""

    __tablename__ = "events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(128), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str] = mapped_column(String(512))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[str] = mapped_column(Text)


class Case(Base):
    """One case per incident: the state of the latest message (by `seq`) plus workflow fields."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_number: Mapped[str] = mapped_column(String(32), unique=True)
    incident_id: Mapped[str] = mapped_column(String(128), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    category_code: Mapped[str | None] = mapped_column(String(16))
    category_name: Mapped[str | None] = mapped_column(String(64))
    category_version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), index=True)
    site_id: Mapped[str] = mapped_column(String(64))
    gateway_id: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(String(64))
    zone: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dwell_s: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    grid_cell: Mapped[str | None] = mapped_column(String(15), index=True)
    cleaner: Mapped[str] = mapped_column(String(64))
    last_seq: Mapped[int] = mapped_column(Integer)
    snapshot_path: Mapped[str | None] = mapped_column(String(1024))
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    timeline: Mapped[list[TimelineRow]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="TimelineRow.id"
    )


@dataclass(slots=True)
class CaseDraft:
    """A case's columns as a plain object, without the ORM's attribute instrumentation: what the batch ingest path
    (`central.ingest_batch`) reads, decides on and writes with Core statements. The names and types are `Case`'s
    columns (`tests/central/test_ingest_batch.py` keeps the two in step); `id` is None until the row is inserted."""

    case_number: str
    incident_id: str
    type: str
    category_code: str | None
    category_name: str | None
    category_version: str | None
    status: str
    site_id: str
    gateway_id: str
    camera_id: str
    started_at: datetime
    last_observed_at: datetime
    dwell_s: float
    confidence: float
    cleaner: str
    last_seq: int
    model_name: str
    model_version: str
    created_at: datetime
    updated_at: datetime
    zone: str | None = None
    ended_at: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    grid_cell: str | None = None
    snapshot_path: str | None = None
    snapshot_sha256: str | None = None
    id: int | None = None


class TimelineRow(Base):
    """One step in the life of a case."""

    __tablename__ = "case_timeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    step: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")

    case: Mapped[Case] = relationship(back_populates="timeline")


class EvidenceRow(Base):
    """The snapshot of an incident (the file lives in the evidence directory), with the gateway camera that
    sent it: it is linked to a case only when that camera opened the case."""

    __tablename__ = "evidence"

    incident_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String(36))
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    site_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gateway_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    camera_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CaseCounter(Base):
    """The last case number handed out per intake day (`GW-YYYYMMDD-NNNN`)."""

    __tablename__ = "case_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class DeadLetter(Base):
    """A message that could not be processed, with the reason: its first bytes, its size and its sha256.

    Only a prefix is kept (`central.ingest.DEAD_LETTER_PREFIX_BYTES`), so a flood of junk cannot grow the store
    without bound; `payload_size` > `len(payload)` says it was cut, the hash still identifies it.
    """

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(512))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class GatewayRow(Base):
    """The site each gateway was first seen in: a gateway that later speaks for another site is refused."""

    __tablename__ = "gateways"

    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())


class DispatchRow(Base):
    """A case assignment waiting for its PUBACK (the central side of the wire outbox); kept for a while after it
    (`acked_at`, epoch seconds) to be sent again if the broker crashes before saving it (`central.dispatch`)."""

    __tablename__ = "dispatch_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    assignment_id: Mapped[str] = mapped_column(String(36), unique=True)
    topic: Mapped[str] = mapped_column(String(512))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    acked_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)


class ApiUser(Base):
    """A person (or screen) allowed to use the HTTP API, with one role (`gridwatch.central.auth.ROLES`).

    A cleaner's `name` is their cleaner id in the roster: they read the cases assigned to that id.
    `oidc_subject` ties the user to the `sub` claim of OIDC bearer JWTs; `disabled_at` revokes every way in.
    """

    __tablename__ = "api_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiToken(Base):
    """An opaque bearer token: `key_id` finds the row, `secret_sha256` checks the rest (the token itself is
    shown once, at creation, and never stored)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("api_users.id", ondelete="CASCADE"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditRow(Base):
    """Who (`actor`, `role`; None when unauthenticated) did what (`action`, `target`), when, from where
    (`remote`: the client address, or `cli:USER@HOST`), and how it ended (`status`: the HTTP code)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(512))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote: Mapped[str] = mapped_column(String(128))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets `central cases` read while the service writes; busy_timeout waits out short locks."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_engine(db_url: str) -> Engine:
    """An engine for `db_url` (`sqlite:///file.db` or `postgresql+psycopg://user@host/db`)."""
    if db_url.startswith("sqlite"):
        engine = create_engine(db_url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(db_url)
    ping_when_idle(engine, PING_IDLE_S)
    return engine


def ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Like `pool_pre_ping`, but only for a connection that sat in the pool `idle_s` or longer: a dead one (the
    server restarted, a proxy dropped it) is discarded and another tried, as the pool does for any checkout that
    raises `DisconnectionError`. The central worker checks a connection out for every batch, tens of milliseconds
    after it checked it in: a ping each time was one more round trip per batch (issue 8: a round trip on a busy
    machine is the server's turn on a core, and the worker's wait for the GIL after it). A connection that dies
    while in use raises as before: the batch is rolled back and retried on a new one (`central.handler`)."""

    def checked_in(_dbapi: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    def checked_out(dbapi: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("checked_in", float("-inf")) < idle_s:
            return
        try:
            alive = engine.dialect.do_ping(dbapi)
        except Exception as exc:  # the driver's error for a dead connection
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("pooled connection failed its ping")

    event.listen(engine, "connect", lambda dbapi, record: checked_in(dbapi, record))  # new: alive, no ping
    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checked_out)


def create_schema(engine: Engine) -> None:
    """Create the central tables that do not exist yet, and add nullable columns newer releases added to
    existing tables, with their indexes (idempotent). Only nullable columns are ever added this way."""
    Base.metadata.create_all(engine)
    _add_missing_columns(engine)


def _add_missing_columns(engine: Engine) -> None:
    inspector = inspect(engine)
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            added = [column for column in table.columns if column.name not in present]
            for column in added:
                if not column.nullable:
                    raise StoreError(f"table {table.name} lacks the NOT NULL column {column.name}: migrate it")
                kind = column.type.compile(dialect=engine.dialect)
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
            for index in table.indexes if added else ():  # create_all skips the indexes of tables that exist
                index.create(conn, checkfirst=True)


@dataclass
class Store:
    """An engine plus its session factory; `close()` releases every pooled connection."""

    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that is closed (not committed) on exit; the caller commits."""
        with self.sessions() as session:
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A session for a writer that nests SAVEPOINTs (`session.begin_nested()`); closed, not committed, on exit.

        On SQLite it opens with `BEGIN IMMEDIATE`: pysqlite sends no BEGIN before a SAVEPOINT, so without it the
        first savepoint would open the transaction and its RELEASE would commit on its own; and the writer takes
        the write lock before its first read, so another writer (the dispatch publisher) cannot make what it read
        stale before it writes (it waits `busy_timeout` instead). PostgreSQL begins on the first statement.
        """
        with self.sessions() as session:
            if self.engine.dialect.name == "sqlite":
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def resolve_db_url(value: str) -> str:
    """`--db` as given: a SQLAlchemy URL (`sqlite:///cases.db`, `postgresql+psycopg://user@host/db`) or a path
    to an SQLite file (`demo-out/cases.db`, which becomes `sqlite:///<absolute path>`)."""
    if "://" not in value:
        return f"sqlite:///{Path(value).expanduser().resolve()}"
    try:
        make_url(value)
    except (ArgumentError, ValueError) as exc:
        raise StoreError(f"--db {value!r} is neither a file path nor a database URL ({exc})") from exc
    return value


def sqlite_file(db_url: str) -> Path | None:
    """The file behind an SQLite URL; None for other databases and in-memory SQLite."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)  # type: ignore[arg-type]


def open_store(db_url: str = DEFAULT_DB_URL, *, create: bool = True) -> Store:
    """Open the store at `db_url`, creating the schema (and an SQLite file) unless `create` is False.

    With `create=False` (the read commands) the database must exist and hold the central tables; anything else
    is a `StoreError` naming the URL, so a typo in a path is not shown as an empty case list.
    """
    shown = _shown(db_url)
    try:
        path = sqlite_file(db_url)
        if path is not None and not create and not path.is_file():
            raise StoreError(f"no case database at {path} (check --db, or start `gridwatch central run` first)")
        if path is not None and create and not path.parent.is_dir():
            raise StoreError(f"cannot create the case database {path}: folder {path.parent} does not exist")
        engine = make_engine(db_url)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise StoreError(f"database URL {shown}: {exc}") from exc
    try:
        if create:
            create_schema(engine)
        elif not inspect(engine).has_table(Case.__tablename__):
            raise StoreError(f"{shown} holds no gridwatch cases table (check --db)")
    except DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise StoreError(f"cannot open the case database {shown}: {reason}") from exc
    except StoreError:
        engine.dispose()
        raise
    return Store(engine, sessionmaker(engine, expire_on_commit=False))


def _shown(db_url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return repr(db_url)
