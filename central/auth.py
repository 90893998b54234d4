"""Who may use the HTTP API and what each role may read; bearer tokens; the audit log.

Roles (a user has exactly one; what it may do is enforced by the server, in `central.api`):

| role | reads |
|---|---|
| `viewer` | every case without incident ids or snapshots (a wall display) |
| `cleaner` | only the cases assigned to them (their user name is their cleaner id in the roster), with snapshots |
| `dispatcher` | every case, incident ids and snapshots |
| `supervisor` | what a dispatcher reads, plus the audit log and the user list |

Opaque tokens look like `gwt_<key id>.<secret>`: the key id finds the row, the sha256 of the secret is compared
in constant time with the stored hash (the token is printed once, at creation, and never stored), and a token
has an expiry and can be revoked; disabling a user revokes all of theirs. OIDC bearer JWTs are checked in
`central.oidc` and mapped to a user by their `sub` claim (`users add NAME --oidc-subject SUB`); the role always
comes from the user table, never from the token.

`FailureLimiter` answers 429 to an address after too many failed sign-ins in a minute, so tokens cannot be
guessed online (they carry 256 random bits anyway). It counts the `auth_failed` rows of the audit log, so the
count is shared by every API process on the same database and survives a restart: restarting the API does not
lift a lockout. `prune_audit` deletes audit rows older than the retention (`ApiSettings.audit_retention_days`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gridwatch.central.errors import CentralError
from gridwatch.central.store import ApiToken, ApiUser, AuditRow, Store, utcnow

log = logging.getLogger("gridwatch.central.api")

VIEWER, CLEANER, DISPATCHER, SUPERVISOR = "viewer", "cleaner", "dispatcher", "supervisor"
ROLES: tuple[str, ...] = (DISPATCHER, CLEANER, SUPERVISOR, VIEWER)

READ_ALL_CASES, READ_OWN_CASES = "cases:read_all", "cases:read_own"
READ_INCIDENT_IDS, READ_SNAPSHOTS = "incident_ids:read", "snapshots:read"
READ_AUDIT, READ_USERS = "audit:read", "users:read"

PERMISSIONS: dict[str, frozenset[str]] = {
    VIEWER: frozenset({READ_ALL_CASES}),
    CLEANER: frozenset({READ_OWN_CASES, READ_SNAPSHOTS}),
    DISPATCHER: frozenset({READ_ALL_CASES, READ_INCIDENT_IDS, READ_SNAPSHOTS}),
    SUPERVISOR: frozenset({READ_ALL_CASES, READ_INCIDENT_IDS, READ_SNAPSHOTS, READ_AUDIT, READ_USERS}),
}

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # the roster's cleaner id pattern
TOKEN_PREFIX = "gwt_"
TOKEN_SHAPE = re.compile(r"^gwt_([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$")
DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS = 90, 3650
AUTH_FAILED = "auth_failed"  # the audit action of a 401: what the failure limiter counts
PRUNE_BATCH = 5000  # audit rows deleted per statement, so a long-due prune never holds the write lock for long


class AuthError(CentralError, ValueError):
    """A user or token operation that cannot be done (unknown user, bad role or name); the CLI prints it."""


class Unauthenticated(Exception):
    """No usable credentials: the API answers 401 with this reason."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: user name, role and how they signed in (`token <key id>` or `oidc`)."""

    name: str
    role: str
    via: str

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())


@dataclass(frozen=True)
class IssuedToken:
    """A new token: `secret` is the whole bearer string, shown once and never stored."""

    key_id: str
    secret: str
    expires_at: datetime


# --- users and tokens ------------------------------------------------------------------------------------------


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role


def add_user(session: Session, name: str, role: str, oidc_subject: str | None = None) -> ApiUser:
    """A new enabled user (the caller commits). Names follow the roster's cleaner id pattern."""
    if not USER_NAME.fullmatch(name):
        raise AuthError(f"user name {name!r}: use 1-64 letters, digits, '.', '_' or '-' (a cleaner's roster id)")
    check_role(role)
    if session.scalars(select(ApiUser).where(ApiUser.name == name)).first() is not None:
        raise AuthError(f"user {name!r} exists already")
    if oidc_subject is not None and find_by_subject(session, oidc_subject) is not None:
        raise AuthError(f"OIDC subject {oidc_subject!r} belongs to another user already")
    user = ApiUser(name=name, role=role, oidc_subject=oidc_subject, created_at=utcnow())
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, name: str) -> ApiUser:
    user = session.scalars(select(ApiUser).where(ApiUser.name == name)).first()
    if user is None:
        raise AuthError(f"no user {name!r} (see `gridwatch central users list`)")
    return user


def find_by_subject(session: Session, subject: str) -> ApiUser | None:
    return session.scalars(select(ApiUser).where(ApiUser.oidc_subject == subject)).first()


def disable_user(session: Session, name: str, now: datetime) -> int:
    """Disable `name` and revoke every live token of theirs; returns how many tokens were revoked."""
    user = get_user(session, name)
    user.disabled_at = user.disabled_at or now
    return len([revoke(t, now) for t in _live_tokens(session, user.id, now)])


def revoke_token(session: Session, key_id: str, now: datetime) -> ApiToken:
    token = session.scalars(select(ApiToken).where(ApiToken.key_id == key_id)).first()
    if token is None:
        raise AuthError(f"no token {key_id!r} (see `gridwatch central users list`)")
    return revoke(token, now)


def revoke(token: ApiToken, now: datetime) -> ApiToken:
    token.revoked_at = token.revoked_at or now
    return token


def _live_tokens(session: Session, user_id: int, now: datetime) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    return [t for t in session.scalars(query) if t.expires_at > now]


def issue_token(session: Session, name: str, days: int, now: datetime) -> IssuedToken:
    """A new random token for the enabled user `name`, valid `days` days; only its hash is stored."""
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise AuthError(f"token lifetime {days} days: use 1..{MAX_TOKEN_DAYS}")
    user = get_user(session, name)
    if user.disabled_at is not None:
        raise AuthError(f"user {name!r} is disabled; add a new user instead")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    expires = now + timedelta(days=days)
    session.add(
        ApiToken(key_id=key_id, user_id=user.id, secret_sha256=_digest(secret), created_at=now, expires_at=expires)
    )
    return IssuedToken(key_id, f"{TOKEN_PREFIX}{key_id}.{secret}", expires)


def _digest(secret: str) -> str:
    """The stored form of a secret: 256 random bits need no slow hash, sha256 cannot be reversed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def authenticate_token(session: Session, bearer: str, now: datetime) -> Principal:
    """The user behind an opaque token, or `Unauthenticated` with the reason."""
    shape = TOKEN_SHAPE.fullmatch(bearer)
    if shape is None:
        raise Unauthenticated("malformed token")
    key_id, secret = shape.groups()
    row = session.execute(
        select(ApiToken, ApiUser).join(ApiUser, ApiUser.id == ApiToken.user_id).where(ApiToken.key_id == key_id)
    ).first()
    stored = row[0].secret_sha256 if row is not None else _digest("")  # compare anyway: same time either way
    if not hmac.compare_digest(_digest(secret), stored) or row is None:
        raise Unauthenticated("unknown token")
    token, user = row
    if token.revoked_at is not None or user.disabled_at is not None:
        raise Unauthenticated("token revoked")
    if token.expires_at <= now:
        raise Unauthenticated("token expired")
    return Principal(user.name, user.role, f"token {key_id}")


def principal_for_subject(session: Session, subject: str) -> Principal:
    """The user an OIDC `sub` claim names, or `Unauthenticated`."""
    user = find_by_subject(session, subject)
    if user is None:
        raise Unauthenticated("no user has this OIDC subject")
    if user.disabled_at is not None:
        raise Unauthenticated("user disabled")
    return Principal(user.name, user.role, "oidc")


@dataclass(frozen=True)
class UserSummary:
    """One line of `users list`."""

    name: str
    role: str
    enabled: bool
    oidc_subject: str | None
    live_tokens: list[tuple[str, datetime]]


def list_users(session: Session, now: datetime) -> list[UserSummary]:
    users = session.scalars(select(ApiUser).order_by(ApiUser.name))
    return [
        UserSummary(
            u.name,
            u.role,
            u.disabled_at is None,
            u.oidc_subject,
            [(t.key_id, t.expires_at) for t in _live_tokens(session, u.id, now)],
        )
        for u in users
    ]


def user_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(ApiUser)) or 0)


# --- audit -----------------------------------------------------------------------------------------------------


def audit(
    session: Session,
    *,
    actor: Principal | str | None,
    action: str,
    target: str,
    remote: str,
    status: int | None = None,
    at: datetime | None = None,
) -> None:
    """Add one audit row (the caller commits). Targets are cut to the column's 512 characters."""
    name, role = (actor.name, actor.role) if isinstance(actor, Principal) else (actor, None)
    session.add(
        AuditRow(
            at=at or utcnow(),
            actor=name,
            role=role,
            action=action[:32],
            target=target[:512],
            status=status,
            remote=remote[:128],
        )
    )


def audit_rows(session: Session, limit: int = 100, actor: str | None = None) -> list[AuditRow]:
    """The newest audit rows first, optionally of one actor."""
    query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    if actor is not None:
        query = query.where(AuditRow.actor == actor)
    return list(session.scalars(query))


def prune_audit(session: Session, older_than: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete the audit rows from before `older_than`, `batch` rows per statement (the caller commits each
    batch by calling again: see `central.api`); returns how many were deleted by this call."""
    doomed = select(AuditRow.id).where(AuditRow.at < older_than).order_by(AuditRow.id).limit(batch)
    ids = list(session.scalars(doomed))
    if ids:
        session.execute(delete(AuditRow).where(AuditRow.id.in_(ids)))
    return len(ids)


class AuditPruner:
    """Keeps the audit log to `days` days: `prune(store)` runs at the API's start-up and then whenever `due()`
    (at most every `every_s` seconds, checked after each audit write, so there is no timer thread). Each run
    deletes in batches of `PRUNE_BATCH` (a commit each) and, when it deleted anything, leaves an `audit.prune`
    row saying how many rows before which time went. `pruned` counts every row deleted since start. Several API
    processes may prune the same table: each deletes what is still there, nothing is counted twice.
    `wall` is the UTC clock of the cutoff, `clock` monotonic seconds for the schedule."""

    def __init__(self, days: int, every_s: float, *, wall: Callable[[], datetime] = utcnow,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.days, self.every_s, self.wall, self.clock = days, every_s, wall, clock
        self.pruned = 0
        self.runs = 0
        self._last: float | None = None
        self._lock = threading.Lock()

    def due(self) -> bool:
        return self._last is None or self.clock() - self._last >= self.every_s

    def prune(self, store: Store) -> int:
        """Delete what is older than the retention now; returns how many rows went (0 if another thread is at it)."""
        if not self._lock.acquire(blocking=False):
            return 0
        try:
            self._last = self.clock()
            cutoff = self.wall() - timedelta(days=self.days)
            deleted = 0
            with store.session() as session:
                while True:
                    batch = prune_audit(session, cutoff, PRUNE_BATCH)
                    session.commit()
                    deleted += batch
                    if batch < PRUNE_BATCH:
                        break
                if deleted:
                    audit(session, actor="system:retention", action="audit.prune", remote="local",
                          target=f"{deleted} rows from before {cutoff.isoformat(timespec='seconds')} "
                                 f"({self.days}-day retention)", at=self.wall())
                    session.commit()
            self.pruned += deleted
            self.runs += 1
            if deleted:
                log.info("api: pruned %d audit rows older than %d days", deleted, self.days)
            return deleted
        finally:
            self._lock.release()


# --- rate limit ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailureLimiter:
    """At most `max_failures` failed sign-ins per address in `window_s` seconds; past that the address is
    refused (429) until enough of its failures left the window. The failures are the audit log's `auth_failed`
    rows (each 401 is one, written before the answer leaves), so every API process on the database sees the same
    count and a restart forgets nothing. 429s are not audited, so a refused address does not extend its own
    lockout. Requests racing in parallel may each pass the check before the others' rows are committed: at most
    the server's concurrency more attempts, then the limit holds. `clock` is the wall clock (UTC)."""

    clock: Callable[[], datetime] = utcnow
    max_failures: int = 10
    window_s: float = 60.0

    def retry_after(self, session: Session, address: str) -> float:
        """Seconds until `address` may try again (0: now)."""
        now = self.clock()
        query = (
            select(AuditRow.at)
            .where(AuditRow.action == AUTH_FAILED, AuditRow.remote == address[:128],
                   AuditRow.at > now - timedelta(seconds=self.window_s))
            .order_by(AuditRow.at.desc())
            .limit(self.max_failures)
        )
        recent = list(session.scalars(query))
        if len(recent) < self.max_failures:
            return 0.0
        return max((recent[-1] - now).total_seconds() + self.window_s, 0.0)
