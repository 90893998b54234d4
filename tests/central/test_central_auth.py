"""Users, tokens, the audit log and the failure limiter, on SQLite and PostgreSQL; the `central users` CLI."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from unittest import mock

import pytest
from sqlalchemy import inspect, select, text

from gridwatch.app.cli import main
from gridwatch.central import auth
from gridwatch.central.auth import AuthError, FailureLimiter, Unauthenticated
from gridwatch.central.store import ApiToken, AuditRow, Store, open_store, utcnow

AUTH_TABLES = {"api_users", "api_tokens", "audit_log"}


def test_a_token_authenticates_its_user_and_only_its_hash_is_stored(store: Store) -> None:
    now = utcnow()
    with store.session() as session:
        auth.add_user(session, "wang", auth.CLEANER)
        issued = auth.issue_token(session, "wang", 30, now)
        session.commit()
        row = session.scalars(select(ApiToken)).one()
        principal = auth.authenticate_token(session, issued.secret, now)

    assert issued.secret.startswith(f"gwt_{issued.key_id}.") and len(issued.secret) == 60
    assert issued.secret.split(".")[1] not in {row.key_id, row.secret_sha256}
    assert (row.key_id, row.expires_at) == (issued.key_id, issued.expires_at)
    assert principal == auth.Principal("wang", "cleaner", f"token {issued.key_id}")
    assert principal.can(auth.READ_OWN_CASES) and not principal.can(auth.READ_ALL_CASES)


def test_expiry_revocation_and_disabling_end_a_token(store: Store) -> None:
    now = utcnow()
    with store.session() as session:
        auth.add_user(session, "disp", auth.DISPATCHER)
        first, second = (auth.issue_token(session, "disp", 1, now) for _ in range(2))
        session.commit()
        with pytest.raises(Unauthenticated, match="expired"):
            auth.authenticate_token(session, first.secret, now + timedelta(days=1))
        auth.revoke_token(session, first.key_id, now)
        session.commit()
        with pytest.raises(Unauthenticated, match="revoked"):
            auth.authenticate_token(session, first.secret, now)
        assert auth.authenticate_token(session, second.secret, now).name == "disp"
        assert auth.disable_user(session, "disp", now) == 1
        session.commit()
        with pytest.raises(Unauthenticated, match="revoked"):
            auth.authenticate_token(session, second.secret, now)
        with pytest.raises(AuthError, match="disabled"):
            auth.issue_token(session, "disp", 1, now)
        assert auth.list_users(session, now)[0].enabled is False


@pytest.mark.parametrize(
    ("name", "role", "subject", "reason"),
    [
        ("bad name", auth.VIEWER, None, "user name 'bad name'"),
        ("x" * 65, auth.VIEWER, None, "user name"),
        ("zhao", "admin", None, "unknown role 'admin'"),
        ("wang", auth.VIEWER, None, "exists already"),
        ("zhao", auth.VIEWER, "sub-1", "belongs to another user"),
    ],
)
def test_bad_users_are_refused(store: Store, name: str, role: str, subject: str | None, reason: str) -> None:
    with store.session() as session:
        auth.add_user(session, "wang", auth.CLEANER, oidc_subject="sub-1")
        with pytest.raises(AuthError, match=reason):
            auth.add_user(session, name, role, subject)


def test_token_operations_on_unknown_names_and_lifetimes_are_refused(store: Store) -> None:
    with store.session() as session:
        auth.add_user(session, "wang", auth.CLEANER)
        for call, reason in [
            (lambda: auth.issue_token(session, "nobody", 1, utcnow()), "no user 'nobody'"),
            (lambda: auth.issue_token(session, "wang", 0, utcnow()), "lifetime 0 days"),
            (lambda: auth.issue_token(session, "wang", 3651, utcnow()), "lifetime 3651 days"),
            (lambda: auth.revoke_token(session, "abc", utcnow()), "no token 'abc'"),
        ]:
            with pytest.raises(AuthError, match=reason):
                call()


def test_audit_rows_newest_first_and_by_actor(store: Store) -> None:
    with store.session() as session:
        auth.add_user(session, "sup", auth.SUPERVISOR)
        sup = auth.Principal("sup", auth.SUPERVISOR, "oidc")
        auth.audit(session, actor=sup, action="read", target="GET /cases", remote="10.0.0.7", status=200)
        auth.audit(session, actor=None, action="auth_failed", target="GET /x" * 200, remote="10.0.0.8", status=401)
        session.commit()
        rows = auth.audit_rows(session)
        mine = auth.audit_rows(session, actor="sup")

    assert [(r.actor, r.role, r.action, r.status, r.remote) for r in rows] == [
        (None, None, "auth_failed", 401, "10.0.0.8"),
        ("sup", "supervisor", "read", 200, "10.0.0.7"),
    ]
    assert len(rows[0].target) == 512 and [r.target for r in mine] == ["GET /cases"]


T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def failed_at(store: Store, address: str, *seconds: float) -> None:
    """An `auth_failed` audit row for `address` at each T0 + seconds (what the API writes for a 401)."""
    with store.session() as session:
        for s in seconds:
            auth.audit(session, actor=None, action=auth.AUTH_FAILED, target="GET /cases", remote=address, status=401,
                       at=T0 + timedelta(seconds=s))
        session.commit()


def test_the_limiter_counts_the_audit_logs_failures_until_they_age_out(store: Store) -> None:
    now = [T0]
    limiter = FailureLimiter(lambda: now[0], max_failures=3, window_s=60)
    with store.session() as session:
        auth.audit(session, actor=None, action="denied", target="GET /audit", remote="a", status=403, at=T0)
        session.commit()
    failed_at(store, "a", 0, 1)
    failed_at(store, "b", 1)
    now[0] = T0 + timedelta(seconds=3)
    with store.session() as session:
        assert limiter.retry_after(session, "a") == 0  # two failures (a 403 is not one)
    failed_at(store, "a", 2)
    with store.session() as session:
        assert limiter.retry_after(session, "a") == 57 and limiter.retry_after(session, "b") == 0
        now[0] = T0 + timedelta(seconds=60.5)
        assert limiter.retry_after(session, "a") == 0  # the first failure left the window


def test_more_failures_than_the_limit_hold_until_enough_left_the_window(store: Store) -> None:
    """Parallel requests can write more failures than the limit: the lockout lasts until fewer than the limit
    are left in the window, not only until the oldest one leaves."""
    failed_at(store, "a", 0, 1, 2, 3, 4)
    limiter = FailureLimiter(lambda: T0 + timedelta(seconds=5), max_failures=3, window_s=60)
    with store.session() as session:
        assert limiter.retry_after(session, "a") == 57


def test_the_audit_log_is_pruned_in_batches_and_the_prune_is_counted_and_audited(store: Store) -> None:
    ages_days = [400, 366, 364, 1]
    with store.session() as session:
        for i, days in enumerate(ages_days):
            auth.audit(session, actor="sup", action="read", target=f"GET /cases/{i}", remote="r", status=200,
                       at=T0 - timedelta(days=days))
        session.commit()
    ticks = [0.0]
    pruner = auth.AuditPruner(365, 3600, wall=lambda: T0, clock=lambda: ticks[0])
    assert pruner.due()
    with mock.patch.object(auth, "PRUNE_BATCH", 1):  # two batches of one row, then an empty one
        assert pruner.prune(store) == 2
    assert not pruner.due() and (pruner.pruned, pruner.runs) == (2, 1)
    ticks[0] = 3600
    assert pruner.due() and pruner.prune(store) == 0 and pruner.pruned == 2
    with store.session() as session:
        rows = auth.audit_rows(session)
    assert [r.target for r in rows[1:]] == ["GET /cases/3", "GET /cases/2"]
    assert (rows[0].actor, rows[0].action) == ("system:retention", "audit.prune")
    assert rows[0].target.startswith("2 rows from before 2025-11-30T12:00:00")


def test_an_older_store_gets_the_new_tables_on_open(db_url: str) -> None:
    with open_store(db_url) as store, store.engine.begin() as conn:
        for table in ("audit_log", "api_tokens", "api_users"):
            conn.execute(text(f"DROP TABLE {table}"))
    with open_store(db_url) as store:
        assert set(inspect(store.engine).get_table_names()) >= AUTH_TABLES


def test_users_cli_adds_issues_lists_revokes_and_audits(
    db_url: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with open_store(db_url) as store, store.engine.begin() as conn:  # a store made before the user tables existed
        for table in ("audit_log", "api_tokens", "api_users"):
            conn.execute(text(f"DROP TABLE {table}"))
    db = ["--db", db_url]

    assert main(["central", "users", "add", "wang", "--role", "cleaner", *db]) == 0
    capsys.readouterr()
    assert main(["central", "users", "token", "wang", "--days", "7", *db]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert out == token + "\n" and token.startswith("gwt_") and token not in err and token not in caplog.text
    key_id = token[4:16]
    assert main(["central", "users", "list", *db]) == 0
    listing = capsys.readouterr().out
    assert "wang" in listing and "cleaner" in listing and key_id in listing and token.split(".")[1] not in listing
    assert main(["central", "users", "revoke", "wang", "--token", key_id, *db]) == 0
    assert main(["central", "users", "revoke", "wang", *db]) == 0
    assert main(["central", "users", "token", "nobody", *db]) == 2
    assert "no user 'nobody'" in capsys.readouterr().err

    with open_store(db_url) as store, store.session() as session:
        with pytest.raises(Unauthenticated, match="revoked"):
            auth.authenticate_token(session, token, utcnow())
        rows = list(session.scalars(select(AuditRow).order_by(AuditRow.id)))
    assert [(r.action, r.target) for r in rows] == [
        ("user.add", "user wang role cleaner"),
        ("token.create", f"user wang token {key_id}"),
        ("token.revoke", f"user wang token {key_id}"),
        ("user.revoke", "user wang"),
    ]
    assert all(r.actor and r.actor.startswith("cli:") and r.remote.startswith("local:") for r in rows)
    assert main(["central", "audit", "--limit", "2", "--json", *db]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [r["action"] for r in shown] == ["user.revoke", "token.revoke"]
    assert shown[0]["target"] == "user wang" and shown[0]["at"].endswith("+00:00")


def test_users_cli_refuses_a_missing_store_and_a_bad_role(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["central", "users", "list", "--db", f"{tmp_path}/missing.db"]) == 2
    assert "no case database" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["central", "users", "add", "x", "--role", "admin", "--db", f"{tmp_path}/missing.db"])
    assert "invalid choice: 'admin'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (["--tls-cert", "server.crt"], "--tls-cert and --tls-key go together"),
        (["--tls-cert", "server.crt", "--tls-key", "server.key"], "--tls-cert server.crt: no such file"),
        (["--oidc-jwks", "missing.json"], "OIDC needs the issuer and the audience"),
        (["--oidc-jwks", "missing.json", "--oidc-issuer", "i", "--oidc-audience", "a"], "OIDC key file missing.json"),
    ],
)
def test_api_refuses_bad_settings_before_serving(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], extra: list[str], reason: str
) -> None:
    open_store(sqlite_url).close()
    assert main(["central", "api", "--db", sqlite_url, *extra]) == 2
    assert reason in capsys.readouterr().err
