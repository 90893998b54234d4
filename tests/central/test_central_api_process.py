"""`gridwatch central users token` and `gridwatch central api` as real processes, on SQLite and PostgreSQL.

The token goes from the CLI's stdout to an HTTP header and nowhere else: not into argv, the server's output or
the store; the database URL and the OIDC settings come from the environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gridwatch.app.broker import free_port
from gridwatch.app.cli import main
from gridwatch.central.categories import load_categories
from gridwatch.central.ingest import ingest_incident
from gridwatch.central.roster import Roster
from gridwatch.central.store import AuditRow, open_store
from tests.central.factories import GRID_A, make_event, payload, topic_of
from tests.central.jwt_helpers import AUDIENCE, ISSUER, KEYS, jwk, mint

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = "import sys\nfrom gridwatch.app.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def gridwatch(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, *argv], env=env, cwd=cwd, text=True, capture_output=True, timeout=60
    )


def wait_until_up(base: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the API did not answer /healthz")


def test_api_process_serves_token_and_jwt_holders_and_never_shows_a_secret(db_url: str, tmp_path: Path) -> None:
    with open_store(db_url) as store, store.session() as session:
        for incident, cell in (("inc-proc-00001", GRID_A), ("inc-proc-00002", "370203009009")):
            event = make_event(incident, grid_cell=cell)
            ingest_incident(session, topic_of(event), payload(event), load_categories(), Roster(cells={GRID_A: "wang"}))
        session.commit()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk(KEYS["ES256"], "k1")]}))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GRIDWATCH_CENTRAL_DB": db_url}
    env |= {"GRIDWATCH_API_OIDC_ISSUER": ISSUER, "GRIDWATCH_API_OIDC_AUDIENCE": AUDIENCE}
    env["GRIDWATCH_API_OIDC_JWKS"] = str(jwks)
    db = ["--db", db_url]
    assert main(["central", "users", "add", "wang", "--role", "cleaner", *db]) == 0
    assert main(["central", "users", "add", "li", "--role", "supervisor", "--oidc-subject", "li-sub", *db]) == 0
    issued = gridwatch(["central", "users", "token", "wang"], env, tmp_path)
    token = issued.stdout.strip()
    assert issued.returncode == 0 and token.startswith("gwt_") and token not in issued.stderr

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, "central", "api", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_up(base, proc)
        anonymous = httpx.get(f"{base}/cases")
        mine = httpx.get(f"{base}/cases", headers={"Authorization": f"Bearer {token}"})
        jwt = mint(KEYS["ES256"], "ES256", sub="li-sub", exp=time.time() + 60, iat=time.time())
        audit = httpx.get(f"{base}/audit", headers={"Authorization": f"Bearer {jwt}"})
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    assert mine.status_code == 200 and [c["cleaner"] for c in mine.json()] == ["wang"]
    assert audit.status_code == 200
    assert [(r["actor"], r["status"], r["remote"]) for r in audit.json()[:2]] == [
        ("wang", 200, "127.0.0.1"),
        (None, 401, "127.0.0.1"),
    ]
    secret = token.split(".")[1]
    assert secret not in out + err and jwt not in out + err and "GET /cases" in out + err  # access log
    with open_store(db_url) as store, store.session() as session:
        rows = [f"{r.actor} {r.target} {r.remote}" for r in session.query(AuditRow)]
    assert not any(secret in row for row in rows) and len(rows) == 6  # 3 CLI changes + 3 requests
