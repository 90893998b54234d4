"""HTTP API and pages over the case store (FastAPI), behind bearer-token authentication.

Every data endpoint needs `Authorization: Bearer <token>`: an opaque token from `gridwatch central users token`
or, when configured, an OIDC JWT (`central.oidc`). What the caller's role may read is decided here, on the server
(`central.auth` has the table): no credentials or a bad token is 401 (with `WWW-Authenticate`), a role that may
not read something is 403, a case the caller may not see is 404 like a missing one. Every request to a data
endpoint, allowed or not, is written to the audit log (who, what, status, when, client address) before the
answer leaves; if that write fails the answer is 503, not the data. Tokens are never accepted in the URL (it
would land in access logs). The failed sign-in limit counts those audit rows (`auth.FailureLimiter`), so it holds
across API processes and restarts; rows older than `ApiSettings.audit_retention_days` are pruned at start-up and
then every `audit_prune_every_s` (`auth.AuditPruner`).

- `GET /healthz`: the database answers (no authentication; no data).
- `GET /me`: who the token belongs to.
- `GET /cases` (`?status=`): the cases the caller may read, as `ApiCase`.
- `GET /cases/{case_number}`: one case with its timeline.
- `GET /cases/{case_number}/snapshot.jpg`: its first snapshot, served by case number (never a server path).
- `GET /audit` (`?limit=`, `?actor=`): the newest audit rows (supervisor).
- `GET /users`: the user table without secrets (supervisor).
- `GET /`, `GET /cleaner`: the dashboard and the cleaner page (`central.dashboard`; data via `/ui/...`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gridwatch.central.auth import (
    AUTH_FAILED,
    READ_ALL_CASES,
    READ_AUDIT,
    READ_INCIDENT_IDS,
    READ_OWN_CASES,
    READ_SNAPSHOTS,
    READ_USERS,
    AuditPruner,
    FailureLimiter,
    Principal,
    Unauthenticated,
    audit,
    audit_rows,
    authenticate_token,
    list_users,
    principal_for_subject,
)
from gridwatch.central.dashboard import APP_JS, CSP, cleaner_fragment, dashboard_fragment, shell
from gridwatch.central.errors import CentralError
from gridwatch.central.oidc import OidcSettings, verify_jwt
from gridwatch.central.store import Case, Store, open_store, utcnow
from gridwatch.central.views import CaseRow, cases_as_rows

__all__ = ["ApiSettings", "create_app"]

log = logging.getLogger("gridwatch.central.api")
PUBLIC_PATHS = frozenset({"/", "/cleaner", "/ui/app.js", "/healthz", "/favicon.ico"})
PERMISSION_TEXT = {
    READ_SNAPSHOTS: "read snapshots",
    READ_AUDIT: "read the audit log",
    READ_USERS: "read the user list",
}


DEFAULT_AUDIT_RETENTION_DAYS = 365
MAX_AUDIT_RETENTION_DAYS = 36500


@dataclass(frozen=True)
class ApiSettings:
    """Authentication settings: OIDC (None: opaque tokens only), the failed sign-in limit per address, and how long
    the audit log keeps its rows (pruned at start-up and then every `audit_prune_every_s`). Out of range:
    `CentralError` naming the field (`api.audit_retention_days: ...`)."""

    oidc: OidcSettings | None = None
    max_failures: int = 10
    failure_window_s: float = 60.0
    audit_retention_days: int = DEFAULT_AUDIT_RETENTION_DAYS
    audit_prune_every_s: float = 3600.0

    def __post_init__(self) -> None:
        checks = [
            ("max_failures", 1 <= self.max_failures <= 1_000_000, "1 or more failed sign-ins"),
            ("failure_window_s", 0 < self.failure_window_s <= 86_400, "more than 0 and at most 86400 seconds"),
            ("audit_retention_days", isinstance(self.audit_retention_days, int)
             and 1 <= self.audit_retention_days <= MAX_AUDIT_RETENTION_DAYS,
             f"a whole number of days from 1 to {MAX_AUDIT_RETENTION_DAYS}"),
            ("audit_prune_every_s", 1 <= self.audit_prune_every_s <= 7 * 86_400, "1 to 604800 seconds"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise CentralError(f"api.{name}: {getattr(self, name)!r} is out of range; use {allowed}")
        if self.failure_window_s > self.audit_retention_days * 86_400:
            raise CentralError("api.failure_window_s: longer than api.audit_retention_days; the limiter counts audit "
                               "rows, so keep them at least as long as the window")


class ApiCase(BaseModel):
    """A case as the API lists it: no server paths; `incident_id` only for roles that may read it and
    `snapshot_url` only for roles that may read snapshots (both None otherwise)."""

    case_number: str
    incident_id: str | None
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
    snapshot_url: str | None


class TimelineStep(BaseModel):
    """One step of a case's timeline."""

    at: datetime
    step: str
    detail: str


class CaseDetail(ApiCase):
    """A case with everything the store knows about it, except where its files are."""

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
    status: str


class Me(BaseModel):
    name: str
    role: str
    via: str


class AuditEntry(BaseModel):
    at: datetime
    actor: str | None
    role: str | None
    action: str
    target: str
    status: int | None
    remote: str


class UserEntry(BaseModel):
    name: str
    role: str
    enabled: bool
    oidc_subject: str | None
    tokens: list[str]


def create_app(db_url: str, settings: ApiSettings | None = None, *, wall: Callable[[], datetime] = utcnow,
               clock: Callable[[], float] = time.monotonic) -> FastAPI:
    """The API over the store at `db_url` (opened at startup, its missing tables created, its audit log pruned;
    closed at shutdown). `wall` (UTC) stamps audit rows and ages failures and audit rows; `clock` (monotonic
    seconds) schedules the pruning; tests pass fakes."""
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = open_store(db_url)
        try:
            await run_in_threadpool(app.state.pruner.prune, app.state.store)
            yield
        finally:
            app.state.store.close()

    app = FastAPI(title="gridwatch central", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.wall = wall
    app.state.limiter = FailureLimiter(wall, settings.max_failures, settings.failure_window_s)
    app.state.pruner = AuditPruner(settings.audit_retention_days, settings.audit_prune_every_s, wall=wall,
                                   clock=clock)
    app.middleware("http")(_audit_and_headers)
    _add_routes(app)
    _add_pages(app)
    return app


# --- authentication ----------------------------------------------------------------------------------------


def _session(request: Request) -> Iterator[Session]:
    store: Store = request.app.state.store
    with store.session() as session:
        yield session


def _remote(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _authenticate(request: Request, session: Session) -> Principal:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise Unauthenticated("send Authorization: Bearer <token>")
    if credentials.count(".") == 2:
        oidc: OidcSettings | None = request.app.state.settings.oidc
        if oidc is None:
            raise Unauthenticated("JWT bearer tokens are not enabled on this server")
        return principal_for_subject(session, verify_jwt(credentials, oidc, time.time())["sub"])
    return authenticate_token(session, credentials, utcnow())


def _principal(request: Request, session: Annotated[Session, Depends(_session)]) -> Principal:
    """The caller, or 401 (429 for an address with too many recent failures)."""
    limiter: FailureLimiter = request.app.state.limiter
    remote = _remote(request)
    wait = limiter.retry_after(session, remote)
    if wait > 0:
        raise HTTPException(
            429,
            "too many failed sign-ins from this address; try again later",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    try:
        principal = _authenticate(request, session)
    except Unauthenticated as exc:  # with or without a header: each 401 is an `auth_failed` audit row, which counts
        error = ', error="invalid_token"' if "authorization" in request.headers else ""
        raise HTTPException(
            401, f"not authenticated: {exc}", headers={"WWW-Authenticate": f'Bearer realm="gridwatch"{error}'}
        ) from None
    request.state.principal = principal
    return principal


def _require(permission: str) -> Callable[[Principal], Principal]:
    def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not principal.can(permission):
            what = PERMISSION_TEXT.get(permission, permission)
            raise HTTPException(403, f"role {principal.role} may not {what}")
        return principal

    return check


def _cleaner_filter(principal: Principal) -> str | None:
    """None: every case; a name: only that cleaner's cases; 403 when the role reads no cases at all."""
    if principal.can(READ_ALL_CASES):
        return None
    if principal.can(READ_OWN_CASES):
        return principal.name
    raise HTTPException(403, f"role {principal.role} may not read cases")


async def _audit_and_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Audit every request to a data endpoint (not 429s, nor paths that match no route: a flood or a scanner
    would fill the log), then add the headers."""
    response = await call_next(request)
    routed = "route" in request.scope  # set by the router when a route matched
    if routed and request.url.path not in PUBLIC_PATHS and response.status_code != 429:
        try:
            await run_in_threadpool(_write_audit, request, response.status_code)
        except Exception:
            log.exception("api: audit log write failed; answering 503 instead")
            response = JSONResponse({"detail": "the audit log cannot be written; try again later"}, status_code=503)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = CSP
    return response


def _write_audit(request: Request, status: int) -> None:
    principal: Principal | None = getattr(request.state, "principal", None)
    action = {401: AUTH_FAILED, 403: "denied"}.get(status, "read" if request.method in ("GET", "HEAD") else "change")
    target = request.method + " " + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    store: Store = request.app.state.store
    with store.session() as session:
        audit(session, actor=principal, action=action, target=target, remote=_remote(request), status=status,
              at=request.app.state.wall())
        session.commit()
    pruner: AuditPruner = request.app.state.pruner
    if pruner.due():
        pruner.prune(store)


# --- routes ------------------------------------------------------------------------------------------------


def _api_case(row: CaseRow, principal: Principal) -> ApiCase:
    fields = row.model_dump(exclude={"snapshot_path", "incident_id"})
    snapshot = row.snapshot_path is not None and principal.can(READ_SNAPSHOTS)
    return ApiCase(
        **fields,
        incident_id=row.incident_id if principal.can(READ_INCIDENT_IDS) else None,
        snapshot_url=f"/cases/{row.case_number}/snapshot.jpg" if snapshot else None,
    )


def _visible_case(session: Session, principal: Principal, case_number: str) -> Case:
    """The case if it exists and the caller may read it; 404 otherwise (the same answer for both)."""
    cleaner = _cleaner_filter(principal)
    case = session.scalars(select(Case).where(Case.case_number == case_number)).one_or_none()
    if case is None or (cleaner is not None and case.cleaner != cleaner):
        raise HTTPException(status_code=404, detail=f"no case {case_number} for you")
    return case


SessionDep = Annotated[Session, Depends(_session)]
PrincipalDep = Annotated[Principal, Depends(_principal)]


def _add_routes(app: FastAPI) -> None:
    @app.get("/healthz")
    def healthz(session: SessionDep) -> Health:
        """The database answers."""
        session.execute(text("SELECT 1"))
        return Health(status="ok")

    @app.get("/me")
    def me(principal: PrincipalDep) -> Me:
        return Me(name=principal.name, role=principal.role, via=principal.via)

    @app.get("/cases")
    def list_cases(principal: PrincipalDep, session: SessionDep, status: str | None = None) -> list[ApiCase]:
        """The cases the caller may read (oldest first), optionally only those with `status`."""
        rows = cases_as_rows(session, cleaner=_cleaner_filter(principal))
        return [_api_case(r, principal) for r in rows if status is None or r.status == status]

    @app.get("/cases/{case_number}")
    def get_case(case_number: str, principal: PrincipalDep, session: SessionDep) -> CaseDetail:
        """One case with its timeline."""
        case = _visible_case(session, principal, case_number)
        extra = {name: getattr(case, name) for name in CaseDetail.model_fields if name not in ApiCase.model_fields}
        extra["timeline"] = [TimelineStep(at=t.at, step=t.step, detail=t.detail) for t in case.timeline]
        return CaseDetail(**_api_case(CaseRow.from_case(case), principal).model_dump(), **extra)

    @app.get("/cases/{case_number}/snapshot.jpg")
    def snapshot(
        case_number: str, principal: Annotated[Principal, Depends(_require(READ_SNAPSHOTS))], session: SessionDep
    ) -> FileResponse:
        """The first snapshot JPEG of the case's incident."""
        case = _visible_case(session, principal, case_number)
        if case.snapshot_path is None or not Path(case.snapshot_path).is_file():
            raise HTTPException(status_code=404, detail=f"case {case_number} has no snapshot")
        return FileResponse(case.snapshot_path, media_type="image/jpeg")

    @app.get("/audit")
    def audit_log(
        _: Annotated[Principal, Depends(_require(READ_AUDIT))],
        session: SessionDep,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        actor: str | None = None,
    ) -> list[AuditEntry]:
        """The newest audit rows first."""
        return [AuditEntry.model_validate(row, from_attributes=True) for row in audit_rows(session, limit, actor)]

    @app.get("/users")
    def users(_: Annotated[Principal, Depends(_require(READ_USERS))], session: SessionDep) -> list[UserEntry]:
        """Every user with role, state and live token ids (never a secret)."""
        return [
            UserEntry(
                name=u.name,
                role=u.role,
                enabled=u.enabled,
                oidc_subject=u.oidc_subject,
                tokens=[key for key, _ in u.live_tokens],
            )
            for u in list_users(session, utcnow())
        ]


def _add_pages(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse)
    def dashboard_page() -> str:
        return shell("gridwatch cases", "/ui/dashboard")

    @app.get("/cleaner", response_class=HTMLResponse)
    def cleaner_page() -> str:
        return shell("gridwatch: my cases", "/ui/cases")

    @app.get("/ui/app.js")
    def app_js() -> PlainTextResponse:
        return PlainTextResponse(APP_JS, media_type="text/javascript")

    @app.get("/ui/dashboard", response_class=HTMLResponse)
    def dashboard_content(principal: PrincipalDep, session: SessionDep) -> str:
        return dashboard_fragment(cases_as_rows(session, cleaner=_cleaner_filter(principal)))

    @app.get("/ui/cases", response_class=HTMLResponse)
    def cleaner_content(principal: PrincipalDep, session: SessionDep) -> str:
        rows = cases_as_rows(session, cleaner=_cleaner_filter(principal))
        return cleaner_fragment(rows, principal.name, principal.can(READ_SNAPSHOTS))
