"""`gridwatch central users token` and `gridwatch central api` as real processes, on SQLite and PostgreSQL.

The token goes from the CLI's stdout to an HTTP header and nowhere else: not into argv, the server's output or
the store; the database URL and the OIDC settings come from the environment. The SQLite run serves HTTPS
(`--tls-cert`/`--tls-key`, a self-signed certificate made here). The page script (`/ui/app.js`) runs in Node
against the live server with a stub DOM: it signs in with the token, fetches the cleaner page and its snapshot
with the header, and goes back to the sign-in form when a token is refused.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gridwatch.app.broker import free_port
from gridwatch.app.cli import main
from gridwatch.central.categories import load_categories
from gridwatch.central.ingest import ingest_evidence, ingest_incident, write_files
from gridwatch.central.roster import Roster
from gridwatch.central.store import AuditRow, open_store
from tests.central.factories import GRID_A, JPEG_BYTES, jpeg_props, make_event, payload, topic_of
from tests.central.jwt_helpers import AUDIENCE, ISSUER, KEYS, jwk, mint

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = "import sys\nfrom gridwatch.app.cli import main\nsys.exit(main(sys.argv[1:]))\n"
NODE = shutil.which("node")


def gridwatch(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, *argv], env=env, cwd=cwd, text=True, capture_output=True, timeout=60
    )


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "api.crt", folder / "api.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def wait_until_up(client: httpx.Client, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if client.get("/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the API did not answer /healthz")


def fill(db_url: str, evidence: Path) -> None:
    """Two cases, one of cleaner wang with a snapshot."""
    with open_store(db_url) as store, store.session() as session:
        events = [make_event(i, grid_cell=c) for i, c in (("inc-proc-00001", GRID_A), ("inc-proc-00002", "37020300"))]
        for event in events:
            ingest_incident(session, topic_of(event), payload(event), load_categories(), Roster(cells={GRID_A: "wang"}))
        result = ingest_evidence(
            session, topic_of(events[0], "evidence"), JPEG_BYTES, jpeg_props("inc-proc-00001"), evidence
        )
        session.commit()
        write_files(result)


def test_api_process_serves_token_and_jwt_holders_and_never_shows_a_secret(db_url: str, tmp_path: Path) -> None:
    fill(db_url, tmp_path / "evidence")
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

    port, tls = free_port(), db_url.startswith("sqlite")
    argv = ["central", "api", "--port", str(port)]
    cert = None
    if tls:
        cert, key = self_signed(tmp_path)
        argv += ["--tls-cert", str(cert), "--tls-key", str(key)]
    base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *argv],
        env=env,
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    jwt = mint(KEYS["ES256"], "ES256", sub="li-sub", exp=time.time() + 60, iat=time.time())
    try:
        with httpx.Client(base_url=base, verify=str(cert) if cert else True) as client:
            wait_until_up(client, proc)
            anonymous = client.get("/cases")
            mine = client.get("/cases", headers={"Authorization": f"Bearer {token}"})
            audit = client.get("/audit", headers={"Authorization": f"Bearer {jwt}"})
            page = run_page_script(base, token, cert) if NODE else None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    assert mine.status_code == 200 and [c["cleaner"] for c in mine.json()] == ["wang"]
    assert mine.json()[0]["snapshot_url"].endswith("/snapshot.jpg") and str(tmp_path) not in mine.text
    assert audit.status_code == 200
    assert [(r["actor"], r["status"], r["remote"]) for r in audit.json()[:2]] == [
        ("wang", 200, "127.0.0.1"),
        (None, 401, "127.0.0.1"),
    ]
    secret = token.split(".")[1]
    assert secret not in out + err and jwt not in out + err and "GET /cases" in out + err  # access log
    with open_store(db_url) as store, store.session() as session:
        rows = [f"{r.actor} {r.target} {r.remote}" for r in session.query(AuditRow)]
    assert not any(secret in row for row in rows)
    if page is not None:
        check_page_script(page, token, mine.json()[0]["case_number"])


# --- the page script in Node ---------------------------------------------------------------------------------

HARNESS = r"""
const h_base = process.argv[2], h_token = process.argv[3];
const h_real = globalThis.fetch, h_calls = [], h_store = new Map(), h_images = [];
let h_submit = null, h_blobs = 0;
globalThis.fetch = (path, options) => {
  h_calls.push([path, options.headers.Authorization]);
  return h_real(h_base + path, options);
};
globalThis.sessionStorage = {
  getItem: (k) => (h_store.has(k) ? h_store.get(k) : null),
  setItem: (k, v) => h_store.set(k, String(v)),
  removeItem: (k) => h_store.delete(k),
};
URL.createObjectURL = () => "blob:" + (++h_blobs);
URL.revokeObjectURL = () => {};
globalThis.setInterval = () => 0;
const h_el = {
  content: {dataset: {src: "/ui/cases"}, textContent: "", _html: "",
    set innerHTML(v) { this._html = v; }, get innerHTML() { return this._html; },
    querySelectorAll() {
      return [...this._html.matchAll(/data-src="([^"]+)"/g)].map((m) => {
        const img = {dataset: {src: m[1]}, src: ""}; h_images.push(img); return img; });
    }},
  login: {hidden: true, addEventListener: (_, f) => { h_submit = f; }},
  token: {value: ""}, who: {textContent: ""}, error: {textContent: ""},
};
globalThis.document = {getElementById: (id) => h_el[id]};
"""

DRIVE = r"""
const h_sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  await h_sleep(200);
  const before = {form_hidden: h_el.login.hidden, calls: h_calls.length};
  h_el.token.value = " " + h_token + " ";
  h_submit({preventDefault() {}});
  for (let i = 0; i < 100 && !(h_images.length && h_images[0].src); i++) { await h_sleep(100); }
  const signed = {who: h_el.who.textContent, html: h_el.content.innerHTML, images: h_images.map((i) => i.src),
    stored: sessionStorage.getItem("gridwatch.api-token"), calls: h_calls.slice()};
  h_el.token.value = "gwt_000000000000." + "A".repeat(43);
  h_el.who.textContent = "";
  h_submit({preventDefault() {}});
  for (let i = 0; i < 100 && h_el.login.hidden; i++) { await h_sleep(100); }
  const refused = {form_hidden: h_el.login.hidden, error: h_el.error.textContent,
    stored: sessionStorage.getItem("gridwatch.api-token"), content: h_el.content.textContent};
  console.log(JSON.stringify({before, signed, refused}));
})();
"""


def run_page_script(base: str, token: str, cert: Path | None) -> dict[str, object]:
    script = HARNESS + httpx.get(f"{base}/ui/app.js", verify=str(cert) if cert else True).text + DRIVE
    env = {**os.environ, **({"NODE_EXTRA_CA_CERTS": str(cert)} if cert else {})}
    done = subprocess.run(
        [str(NODE), "-", base, token], input=script, text=True, capture_output=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def check_page_script(page: dict[str, object], token: str, number: str) -> None:
    before, signed, refused = page["before"], page["signed"], page["refused"]
    assert before == {"form_hidden": False, "calls": 0}  # no token yet: the form, and no request at all
    assert signed["who"] == "wang (cleaner)" and number in signed["html"] and signed["stored"] == token  # type: ignore[index]
    assert signed["images"] == ["blob:1"]  # type: ignore[index]
    assert [c[0] for c in signed["calls"]] == ["/me", "/ui/cases", f"/cases/{number}/snapshot.jpg"]  # type: ignore[index]
    assert all(c[1] == f"Bearer {token}" for c in signed["calls"])  # type: ignore[index]
    assert refused["form_hidden"] is False and refused["stored"] is None and refused["content"] == ""  # type: ignore[index]
    assert refused["error"] == "not authenticated: unknown token"  # type: ignore[index]


def test_node_is_there_for_the_page_script() -> None:
    if NODE is None:
        pytest.skip("node is not installed: the page script test in the process test did not run")
