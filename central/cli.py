"""`gridwatch central run | cases | dead-letters | api`.

`register(subparsers)` fills the `central` group that `gridwatch.cli` creates; every leaf parser sets
`func(args) -> int` (the exit code). `--db` takes a file path or a URL; the read commands refuse a database
that does not exist instead of creating an empty one. A bad `--broker` or `--db` raises a `GridwatchError`
(which `gridwatch.app.cli.main` prints as one line, exit 2) before any thread starts.

Secrets never go on the command line (every local user reads it in `ps`): the broker and database URLs default to
`$GRIDWATCH_CENTRAL_BROKER` and `$GRIDWATCH_CENTRAL_DB`, the broker login comes from `--username` /
`$GRIDWATCH_MQTT_USERNAME` and `$GRIDWATCH_MQTT_PASSWORD`, a PostgreSQL password from libpq's `$PGPASSWORD` or
`~/.pgpass`. A password written into `--broker` or `--db` itself is refused.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from types import FrameType
from urllib.parse import quote

from rich.console import Console
from sqlalchemy.engine import make_url

from gridwatch.central.categories import load_categories
from gridwatch.central.errors import CentralError, StoreError
from gridwatch.central.roster import Roster, load_roster
from gridwatch.central.service import DEFAULT_BATCH_MS, DEFAULT_BATCH_SIZE, DEFAULT_CLIENT_ID, CentralService
from gridwatch.central.store import DEFAULT_DB_URL, open_store, resolve_db_url
from gridwatch.central.views import cases_as_rows, cases_json, cases_table, dead_letters_table
from gridwatch.wire.mqtt import BrokerURL
from gridwatch.wire.topics import DEFAULT_PREFIX

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
DEFAULT_DB = DEFAULT_DB_URL.removeprefix("sqlite:///")
BROKER_ENV, DB_ENV = "GRIDWATCH_CENTRAL_BROKER", "GRIDWATCH_CENTRAL_DB"


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
    api = commands.add_parser("api", help="serve the read-only HTTP API and dashboard (needs the api extra)")
    _add_db(api)
    api.add_argument("--host", default="127.0.0.1", help="listen address")
    api.add_argument("--port", type=int, default=8080, help="listen port")
    api.set_defaults(func=cmd_api)


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
    run.add_argument("--evidence-dir", help="store snapshots here (not subscribed when omitted)")
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
    """Serve `central.api` with uvicorn until interrupted."""
    db_url = _db_url(args)
    open_store(db_url, create=False).close()  # fail now, in one line, rather than inside the server

    import uvicorn  # the api extra: imported only when serving

    from gridwatch.central.api import create_app

    uvicorn.run(create_app(db_url), host=args.host, port=args.port, log_level="info")
    return 0
