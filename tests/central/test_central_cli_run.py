"""`gridwatch central run` as a process: it ingests, and SIGTERM stops it gracefully (exit 0)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridwatch.app.broker import MosquittoBroker
from gridwatch.central.store import open_store
from gridwatch.central.views import cases_as_rows
from tests.central.factories import make_event, payload
from tests.central.mqtt_helpers import connected, publish

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = "import sys\nfrom gridwatch.app.cli import main\nsys.exit(main(sys.argv[1:]))\n"

pytestmark = pytest.mark.e2e


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker() as running:
        yield running


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60.0) -> list[str]:
    """The log lines up to the one with `needle`. The timeout only ends a hung run: 10 s failed with 8 test runs
    sharing 2 cores (the SUBACK's log line came later), which says nothing about the service."""
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:  # EOF: the process ended without logging it
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not logged; got {seen}")


def wait_for_cases(db: str, n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with open_store(db) as store:
        while time.monotonic() < deadline:
            with store.session() as session:
                if len(cases_as_rows(session)) >= n:
                    return
            time.sleep(0.1)
    raise AssertionError(f"fewer than {n} cases after {timeout}s")


def test_run_ingests_and_stops_on_sigterm(broker: MosquittoBroker, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    roster = tmp_path / "roster.yaml"
    roster.write_text('default_cleaner: desk\ncells: {"370203001001": cleaner-a}\n')
    argv = ["central", "run", "--broker", broker.url, "--db", db, "--roster", str(roster)]
    argv += ["--events-log", str(tmp_path / "events.jsonl"), "--client-id", "cli-test"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *argv],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_line(proc, "central: subscribed")
        with connected(broker.url) as pub:
            publish(pub, "gridwatch/v1/site-1/gw-1/cam-1/incident", payload(make_event("inc-cli-0001")))
        wait_for_cases(db, 1)
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 0
    assert "central stopped" in out and "'stored': 1" in out
    with open_store(db) as store, store.session() as session:
        rows = cases_as_rows(session)
    assert [(r.incident_id, r.cleaner) for r in rows] == [("inc-cli-0001", "cleaner-a")]
    assert json.loads((tmp_path / "events.jsonl").read_text())["incident_id"] == "inc-cli-0001"


def test_run_defaults_to_a_plain_subscription_and_share_group_is_opt_in() -> None:
    from gridwatch.app.cli import build_parser

    args = build_parser().parse_args(["central", "run"])
    assert (args.share_group, args.sites) == ("", [])
    args = build_parser().parse_args(["central", "run", "--share-group", "central", "--site", "a", "--site", "b"])
    assert (args.share_group, args.sites) == ("central", ["a", "b"])
