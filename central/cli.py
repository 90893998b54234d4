"""`gridwatch central run | cases | dead-letters | api | users | audit`.

`register(subparsers)` fills the `central` group that `gridwatch.cli` creates; every leaf parser sets
`func(args) -> int` (the exit code). `--db` takes a file path or a URL; the read commands refuse a database
that does not exist instead of creating an empty one. A bad `--broker` or `--db` raises a `GridwatchError`
(which `gridwatch.app.cli.main` prints as one line, exit 2) before any thread starts.

Secrets never go on the command line (every local user reads it in `ps`): the broker and database URLs default to
`$GRIDWATCH_CENTRAL_BROKER` and `$GRIDWATCH_CENTRAL_DB`, the broker login comes from `--username` /
`$GRIDWATCH_MQTT_USERNAME` and `$GRIDWATCH_MQTT_PASSWORD`, a PostgreSQL password from libpq's `$PGPASSWORD` or
`~/.pgpass`. A password written into `--broker` or `--db` itself is refused. API tokens are made by
`users token NAME`, which prints the token once on stdout (never logged, never stored, never taken from argv).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import socket
import threading
from types import FrameType
from urllib.parse import quote

from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gridwatch.central import auth
from gridwatch.central.categories import load_categories
from gridwatch.central.errors import CentralError, StoreError
from gridwatch.central.roster import Roster, load_roster
from gridwatch.central.service import (
    DEFAULT_BATCH_MS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLIENT_ID,
    CentralService,
    settle_heap,
)
from gridwatch.central.store import DEFAULT_DB_URL, Store, create_schema, open_store, resolve_db_url, utcnow
from gridwatch.central.views import cases_as_rows, cases_json, cases_table, dead_letters_table
from gridwatch.wire.mqtt import BrokerURL
from gridwatch.wire.topics import DEFAULT_PREFIX

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
DEFAULT_DB = DEFAULT_DB_URL.removeprefix("sqlite:///")
BROKER_ENV, DB_ENV = "GRIDWATCH_CENTRAL_BROKER", "GRIDWATCH_CENTRAL_DB"
OIDC_ENV = {"issuer": "GRIDWATCH_API_OIDC_ISSUER", "audience": "GRIDWATCH_API_OIDC_AUDIENCE",
            "jwks": "GRIDWATCH_API_OIDC_JWKS"}
RETENTION_ENV = "GRIDWATCH_API_AUDIT_RETENTION_DAYS"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `run`, `cases`, `dead-letters` and `api` to the subparsers of the `central` group.

    `gridwatch.cli` creates the `central` parser and passes its subparsers here, so the commands read
    `gridwatch central run ...`; each sets `func(args) -> int`.
    """
    _add_run(commands)
    cases = commands.add_parser("cases", help="list the cases in the store")
    _add_db(cases)
    cases.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    cases.set_defaults(func=cmd_cases)
    letters = commands.add_parser("dead-letters", help="list payloads that could not be processed")
    _add_db(letters)
    letters.add_argument("--limit", type=int, default=100, help="show at most this many (newest first)")
    letters.set_defaults(func=cmd_dead_letters)
    _add_api(commands)
    _add_users(commands)
    audit_log = commands.add_parser("audit", help="list the API audit log (who read or changed what)")
    _add_db(audit_log)
    audit_log.add_argument("--limit", type=int, default=100, help="show at most this many (newest first)")
    audit_log.add_argument("--actor", help="only this user's rows")
    audit_log.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    audit_log.set_defaults(func=cmd_audit)


def _add_api(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api = commands.add_parser("api", help="serve the HTTP API and dashboard behind bearer tokens (needs the api extra)")
    _add_db(api)
    api.add_argument("--host", default="127.0.0.1", help="listen address")
    api.add_argument("--port", type=int, default=8080, help="listen port")
    api.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM; chain included)")
    api.add_argument("--tls-key", help="the certificate's private key file (PEM, readable only by the service)")
    for key, what in (("issuer", "the `iss` OIDC JWTs must carry"), ("audience", "the `aud` they must include"),
                      ("jwks", "the issuer's public keys: a JWKS JSON file or a PEM file; OIDC is off without it")):
        api.add_argument(f"--oidc-{key}", default=os.environ.get(OIDC_ENV[key]),
                         help=f"{what} (default ${OIDC_ENV[key]})")
    api.add_argument("--audit-retention-days", type=int, default=os.environ.get(RETENTION_ENV, "365"),
                     help=f"delete audit rows older than this many days, at start-up and hourly (default "
                     f"${RETENTION_ENV} or 365)")
    api.set_defaults(func=cmd_api)


def _add_users(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = commands.add_parser("users", help="API users, roles and tokens").add_subparsers(
        dest="users_command", metavar="{add,list,revoke,token}", required=True)
    add = users.add_parser("add", help="add a user with a role (a cleaner's NAME is their roster cleaner id)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=auth.ROLES)
    add.add_argument("--oidc-subject", help="the `sub` claim of this user's OIDC JWTs")
    add.set_defaults(func=cmd_users_add)
    listing = users.add_parser("list", help="users, roles and live token ids")
    listing.set_defaults(func=cmd_users_list)
    revoke = users.add_parser("revoke", help="disable a user and revoke all their tokens, or one token (--token)")
    revoke.add_argument("name")
    revoke.add_argument("--token", metavar="KEY_ID", help="revoke only this token (its id from `users list`)")
    revoke.set_defaults(func=cmd_users_revoke)
    token = users.add_parser("token", help="make a new token for a user and print it once on stdout")
    token.add_argument("name")
    token.add_argument("--days", type=int, default=auth.DEFAULT_TOKEN_DAYS,
                       help=f"lifetime in days (default {auth.DEFAULT_TOKEN_DAYS}, at most {auth.MAX_TOKEN_DAYS})")
    token.set_defaults(func=cmd_users_token)
    for parser in (add, listing, revoke, token):
        _add_db(parser)


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get(DB_ENV, DEFAULT_DB),
        help=f"case database: a file path (demo-out/cases.db) or a URL (sqlite:///cases.db, "
        f"postgresql+psycopg://user@host/db; password from $PGPASSWORD); default ${DB_ENV} or {DEFAULT_DB}",
    )


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser("run", help="subscribe to incidents and keep cases until SIGINT/SIGTERM")
    run.add_argument("--broker", default=os.environ.get(BROKER_ENV, DEFAULT_BROKER),
                     help=f"mqtt://host:port or mqtts://... (default ${BROKER_ENV} or {DEFAULT_BROKER})")
    _add_db(run)
    run.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix")
    run.add_argument("--protocol", choices=["5", "3.1.1"], default="5", help="MQTT protocol version")
    run.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help="stable id: it names the broker session")
    run.add_argument("--share-group", default="",
                     help="opt in to an MQTT 5 shared subscription ($share/NAME/...) to split the load over several "
                     "instances; Mosquitto queues nothing for a group with no member connected, so events published "
                     "after a broker restart before a member is back are lost. Default: a plain persistent "
                     "subscription, which loses nothing")
    run.add_argument("--site", action="append", default=[], dest="sites", metavar="SITE",
                     help="subscribe to this site's topics only (repeatable; default every site): several centrals, "
                     "each with its own --client-id and disjoint --site lists, split the city without loss")
    run.add_argument("--evidence-dir", help="store snapshots here (when omitted they are acknowledged and receipted "
                     "to the gateway, and counted as evidence_discarded, but not stored)")
    run.add_argument("--events-log", help="append every incident payload, one line each, to this file")
    run.add_argument("--roster", help="grid cell -> cleaner YAML")
    run.add_argument("--categories", help="category table YAML (default: the shipped GB/T 47678.5-2026 table)")
    run.add_argument("--ca-file", help="CA bundle that signed the broker's certificate (mqtts://)")
    run.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                     help=f"commit up to this many messages in one transaction, then acknowledge them (default "
                     f"{DEFAULT_BATCH_SIZE}; 1 = a transaction per message)")
    run.add_argument("--batch-ms", type=float, default=DEFAULT_BATCH_MS,
                     help=f"wait at most this many ms after a batch's first message for more (default "
                     f"{DEFAULT_BATCH_MS:g})")
    run.add_argument("--username", default=os.environ.get("GRIDWATCH_MQTT_USERNAME"),
                     help="broker user (default $GRIDWATCH_MQTT_USERNAME); password from $GRIDWATCH_MQTT_PASSWORD")
    run.set_defaults(func=cmd_run)


def _from_argv(value: str, env: str) -> bool:
    """Whether `value` was typed on the command line rather than taken from the environment variable `env`."""
    return value != os.environ.get(env)


def broker_url(args: argparse.Namespace) -> str:
    """Credentials from flags/environment rather than the URL, so they do not show in `ps`."""
    password = os.environ.get("GRIDWATCH_MQTT_PASSWORD")
    url = BrokerURL.parse(args.broker)
    if url.password and _from_argv(args.broker, BROKER_ENV):
        raise CentralError(f"--broker {url}: the URL carries a password, which every local user can read in ps; "
                           f"set GRIDWATCH_MQTT_PASSWORD (and --username) or pass the URL in ${BROKER_ENV}")
    if not args.username:
        return str(args.broker)
    auth = quote(args.username, safe="") + (f":{quote(password, safe='')}" if password else "")
    return f"{'mqtts' if url.tls else 'mqtt'}://{auth}@{url.host}:{url.port}"


def _db_url(args: argparse.Namespace) -> str:
    """`--db` as a URL; a password typed into it on the command line is refused (see the module docstring)."""
    url = resolve_db_url(args.db)
    if _from_argv(args.db, DB_ENV) and make_url(url).password:
        raise StoreError(f"--db {make_url(url)!r}: the URL carries a password, which every local user can read in "
                         f"ps; set PGPASSWORD (or ~/.pgpass) or pass the URL in ${DB_ENV}")
    return url


def cmd_run(args: argparse.Namespace) -> int:
    """Run the service until SIGINT or SIGTERM, then stop gracefully and print the counters.

    Everything that can be wrong with the arguments (broker URL, database path) raises here, before a thread
    starts; the database is created when it does not exist yet.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = CentralService(
        broker_url(args),
        _db_url(args),
        prefix=args.prefix,
        protocol=args.protocol,
        client_id=args.client_id,
        share_group=args.share_group or None,
        sites=tuple(args.sites),
        evidence_dir=args.evidence_dir,
        events_log=args.events_log,
        roster=load_roster(args.roster) if args.roster else Roster(),
        categories=load_categories(args.categories),
        ca_file=args.ca_file,
        batch_size=args.batch_size,
        batch_ms=args.batch_ms,
    )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("gridwatch.central").info("central: signal %d, stopping", signum)
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        service.start(wait=False)  # opens (creating) the store first: a bad --db fails before any thread
        settle_heap()  # this process runs the service only: start-up objects out of the collector's way
        while not stop.wait(1.0):
            pass
    finally:
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    Console().print(f"central stopped: {service.snapshot()}")
    return 0


def cmd_cases(args: argparse.Namespace) -> int:
    """Print the cases as a table, or as JSON with `--json`."""
    with open_store(_db_url(args), create=False) as store, store.session() as session:
        rows = cases_as_rows(session)
    if args.json:
        print(cases_json(rows))
    else:
        Console().print(cases_table(rows))
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """Print the newest dead letters."""
    with open_store(_db_url(args), create=False) as store, store.session() as session:
        Console().print(dead_letters_table(session, args.limit))
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    """Serve `central.api` with uvicorn until interrupted.

    The store, the OIDC key file and the TLS pair are checked first, so a mistake is one line, not a traceback
    from inside the server; the user, token and audit tables are added to an older store.
    """
    db_url = _db_url(args)
    from gridwatch.central.api import ApiSettings, create_app
    from gridwatch.central.oidc import load_settings

    settings = ApiSettings(oidc=load_settings(args.oidc_issuer, args.oidc_audience, args.oidc_jwks),
                           audit_retention_days=args.audit_retention_days)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise CentralError("--tls-cert and --tls-key go together")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path and not os.path.isfile(path):
            raise CentralError(f"{flag} {path}: no such file")
    with _auth_store(args) as store, store.session() as session:
        users = auth.user_count(session)
    log = logging.getLogger("gridwatch.central.api")
    if users == 0:
        log.warning("api: no users yet, so every request is refused; add one with `gridwatch central users add`")
    if not args.tls_cert and args.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("api: listening on %s without TLS: tokens cross the network in clear text; use --tls-cert/"
                    "--tls-key or a TLS reverse proxy", args.host)

    import uvicorn  # the api extra: imported only when serving

    uvicorn.run(create_app(db_url, settings), host=args.host, port=args.port, log_level="info",
                ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)
    return 0


def _auth_store(args: argparse.Namespace) -> Store:
    """The existing store, with the user, token and audit tables added when an older release made it."""
    store = open_store(_db_url(args), create=False)
    try:
        create_schema(store.engine)
    except Exception:
        store.close()
        raise
    return store


def _cli_audit(session: Session, action: str, target: str) -> None:
    """An audit row for a change made on this host's command line: the OS user and the host name."""
    auth.audit(session, actor=f"cli:{getpass.getuser()}", action=action, target=target,
               remote=f"local:{socket.gethostname()}")


def cmd_users_add(args: argparse.Namespace) -> int:
    with _auth_store(args) as store, store.session() as session:
        user = auth.add_user(session, args.name, args.role, args.oidc_subject)
        _cli_audit(session, "user.add", f"user {user.name} role {user.role}")
        session.commit()
    print(f"added {args.name} ({args.role}); make a token with: gridwatch central users token {args.name}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    table = Table(title="API users")
    for column in ("name", "role", "state", "OIDC subject", "live tokens (id until)"):
        table.add_column(column)
    with _auth_store(args) as store, store.session() as session:
        for user in auth.list_users(session, utcnow()):
            tokens = ", ".join(f"{key} {until:%Y-%m-%d}" for key, until in user.live_tokens) or "-"
            table.add_row(user.name, user.role, "enabled" if user.enabled else "disabled", user.oidc_subject or "-",
                          tokens)
    Console().print(table)
    return 0


def cmd_users_revoke(args: argparse.Namespace) -> int:
    with _auth_store(args) as store, store.session() as session:
        if args.token:
            token = auth.revoke_token(session, args.token, utcnow())
            if token.user_id != auth.get_user(session, args.name).id:
                raise auth.AuthError(f"token {args.token} does not belong to {args.name}")
            _cli_audit(session, "token.revoke", f"user {args.name} token {args.token}")
            message = f"revoked token {args.token} of {args.name}"
        else:
            count = auth.disable_user(session, args.name, utcnow())
            _cli_audit(session, "user.revoke", f"user {args.name}")
            message = f"disabled {args.name} and revoked {count} token(s)"
        session.commit()
    print(message)
    return 0


def cmd_users_token(args: argparse.Namespace) -> int:
    """Print a new token once on stdout (nothing else goes there, so `> file` captures just the token)."""
    with _auth_store(args) as store, store.session() as session:
        issued = auth.issue_token(session, args.name, args.days, utcnow())
        _cli_audit(session, "token.create", f"user {args.name} token {issued.key_id}")
        session.commit()
    print(issued.secret)
    until = f"{issued.expires_at:%Y-%m-%d %H:%M}Z"
    Console(stderr=True).print(f"token {issued.key_id} for {args.name}, valid until {until}; shown only this once")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Print the newest audit rows (a table, or JSON with `--json`)."""
    if args.limit < 1:
        raise auth.AuthError(f"--limit {args.limit}: give a positive number of rows")
    with _auth_store(args) as store, store.session() as session:
        rows = auth.audit_rows(session, args.limit, args.actor)
    keys = ("actor", "role", "action", "target", "status", "remote")
    if args.json:
        print(json.dumps([{"at": r.at.isoformat(), **{k: getattr(r, k) for k in keys}} for r in rows], indent=2))
        return 0
    table = Table(title="API audit log")
    for column in ("at (UTC)", *keys):
        table.add_column(column)
    for row in rows:
        cells = ("-" if getattr(row, k) is None else str(getattr(row, k)) for k in keys)
        table.add_row(f"{row.at:%Y-%m-%d %H:%M:%S}", *cells)
    Console().print(table)
    return 0
