"""The API and pages serve what the store holds, to whom their role allows, and audit every request."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette asks for `httpx2`; the env ships httpx, which still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from gridwatch.central import auth
from gridwatch.central.api import ApiSettings, create_app
from gridwatch.central.categories import load_categories
from gridwatch.central.dashboard import svg_map
from gridwatch.central.errors import CentralError
from gridwatch.central.ingest import ingest_evidence, ingest_incident, write_files
from gridwatch.central.roster import Roster
from gridwatch.central.store import ApiToken, AuditRow, open_store, utcnow
from gridwatch.central.views import cases_as_rows
from tests.central.factories import GRID_A, GRID_B, JPEG_BYTES, jpeg_props, lifecycle, make_event, payload, topic_of

USERS = {"sup": auth.SUPERVISOR, "disp": auth.DISPATCHER, "wang": auth.CLEANER, "wall": auth.VIEWER}
DATA_PATHS = ["/me", "/cases", "/cases/X", "/cases/X/snapshot.jpg", "/audit", "/users", "/ui/dashboard", "/ui/cases"]


@dataclass
class Api:
    client: TestClient
    url: str
    tokens: dict[str, str]
    root: Path

    def get(self, path: str, user: str | None = None, params: dict[str, object] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.get(path, headers=headers, params=params)  # type: ignore[arg-type]


def fill(url: str, root: Path) -> dict[str, str]:
    """Three cases (one of cleaner wang with a snapshot, two of dispatch-desk) and a token per user."""
    events = [
        *lifecycle("inc-api-00001", updates=1),
        make_event("inc-api-00002", grid_cell=GRID_B),
        make_event("inc-api-00003", located=False, incident_type="fallen_wire"),
    ]
    with open_store(url) as store, store.session() as session:
        for event in events:
            ingest_incident(session, topic_of(event), payload(event), load_categories(), Roster(cells={GRID_A: "wang"}))
        result = ingest_evidence(
            session, topic_of(events[0], "evidence"), JPEG_BYTES, jpeg_props("inc-api-00001"), root / "evidence"
        )
        tokens = {}
        for name, role in USERS.items():
            auth.add_user(session, name, role)
            tokens[name] = auth.issue_token(session, name, 30, utcnow()).secret
        session.commit()
        write_files(result)
    return tokens


def make_api(tmp_path: Path, settings: ApiSettings | None = None) -> Iterator[Api]:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    tokens = fill(url, tmp_path)
    with TestClient(create_app(url, settings)) as client:
        yield Api(client, url, tokens, tmp_path)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(tmp_path)


def numbers(api: Api, user: str) -> dict[str, str]:
    return {c["incident_id"] or c["case_number"]: c["case_number"] for c in api.get("/cases", user).json()}


@pytest.mark.parametrize("path", DATA_PATHS)
def test_every_data_endpoint_needs_a_token(api: Api, path: str) -> None:
    response = api.client.get(path)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="gridwatch"'
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Bearer gwt_000000000000." + "A" * 43, "unknown token"),
        ("Bearer nonsense", "malformed token"),
        ("Basic dXNlcjpwYXNz", "Authorization: Bearer"),
        ("Bearer a.b.c", "JWT bearer tokens are not enabled"),
    ],
)
def test_bad_credentials_are_401_with_the_reason(api: Api, header: str, reason: str) -> None:
    response = api.client.get("/cases", headers={"Authorization": header})

    assert response.status_code == 401 and reason in response.json()["detail"]
    assert "invalid_token" in response.headers["www-authenticate"]


def test_a_token_with_a_wrong_secret_is_refused(api: Api) -> None:
    key_id = api.tokens["disp"].split(".")[0]
    assert api.client.get("/cases", headers={"Authorization": f"Bearer {key_id}.{'B' * 43}"}).status_code == 401


def test_expired_revoked_and_disabled_tokens_are_refused(api: Api) -> None:
    assert api.get("/me", "disp").status_code == 200
    with open_store(api.url) as store, store.session() as session:
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert api.get("/me", "disp").json()["detail"] == "not authenticated: token expired"
    with open_store(api.url) as store, store.session() as session:
        session.execute(update(ApiToken).values(expires_at=utcnow() + timedelta(days=1)))
        auth.revoke_token(session, api.tokens["disp"][4:16], utcnow())
        auth.disable_user(session, "wall", utcnow())
        session.commit()
    assert api.get("/me", "disp").json()["detail"] == "not authenticated: token revoked"
    assert api.get("/me", "wall").status_code == 401
    assert api.get("/me", "wang").json() == {
        "name": "wang",
        "role": "cleaner",
        "via": f"token {api.tokens['wang'][4:16]}",
    }


def test_dispatcher_reads_every_case_without_server_paths(api: Api) -> None:
    with open_store(api.url) as store, store.session() as session:
        rows = cases_as_rows(session)

    response = api.get("/cases", "disp")

    expected = []
    for row in rows:
        item = row.model_dump(mode="json", exclude={"snapshot_path"})
        item["snapshot_url"] = f"/cases/{row.case_number}/snapshot.jpg" if row.snapshot_path else None
        expected.append(item)
    assert response.json() == expected
    assert [c["incident_id"] for c in api.get("/cases", "disp", params={"status": "resolved_on_camera"}).json()] == [
        "inc-api-00001"
    ]


def test_no_response_holds_a_server_path(api: Api) -> None:
    number = numbers(api, "disp")["inc-api-00001"]
    for path in ["/cases", f"/cases/{number}", "/ui/dashboard", "/ui/cases", "/audit", "/users"]:
        text = api.get(path, "sup").text
        assert str(api.root) not in text and "snapshot_path" not in text, path


def test_case_detail_and_snapshot(api: Api) -> None:
    number = numbers(api, "disp")["inc-api-00001"]

    detail = api.get(f"/cases/{number}", "disp").json()
    image = api.get(detail["snapshot_url"], "disp")

    assert detail["incident_id"] == "inc-api-00001" and detail["cleaner"] == "wang"
    assert [s["step"] for s in detail["timeline"]] == [
        "intake",
        "assigned",
        "updated",
        "ended",
        "resolved_on_camera",
        "snapshot",
    ]
    assert image.status_code == 200 and image.content == JPEG_BYTES
    assert image.headers["content-type"] == "image/jpeg"


def test_missing_cases_and_snapshots_are_404(api: Api) -> None:
    no_snapshot = numbers(api, "disp")["inc-api-00002"]
    assert api.get("/cases/GW-19990101-0001", "disp").status_code == 404
    assert api.get(f"/cases/{no_snapshot}/snapshot.jpg", "disp").status_code == 404


def test_a_cleaner_reads_only_their_own_cases(api: Api) -> None:
    every = numbers(api, "disp")
    own = api.get("/cases", "wang").json()

    assert [c["case_number"] for c in own] == [every["inc-api-00001"]]
    assert own[0]["incident_id"] is None  # cleaners get incident ids only in their dispatch, not from the API
    assert api.get(own[0]["snapshot_url"], "wang").content == JPEG_BYTES
    other = every["inc-api-00002"]
    assert api.get(f"/cases/{other}", "wang").status_code == 404
    assert api.get(f"/cases/{other}/snapshot.jpg", "wang").status_code == 404
    page = api.get("/ui/cases", "wang").text
    assert every["inc-api-00001"] in page and other not in page and page.count("data-src=") == 1


def test_a_viewer_reads_cases_without_incident_ids_or_snapshots(api: Api) -> None:
    cases = api.get("/cases", "wall").json()
    number = cases[0]["case_number"]

    assert len(cases) == 3
    assert all(c["incident_id"] is None and c["snapshot_url"] is None for c in cases)
    assert api.get(f"/cases/{number}", "wall").json()["incident_id"] is None
    denied = api.get(f"/cases/{number}/snapshot.jpg", "wall")
    assert denied.status_code == 403
    assert denied.json()["detail"] == "role viewer may not read snapshots"


@pytest.mark.parametrize(("user", "status"), [("sup", 200), ("disp", 403), ("wang", 403), ("wall", 403)])
def test_only_supervisors_read_the_audit_log_and_users(api: Api, user: str, status: int) -> None:
    assert api.get("/audit", user).status_code == status
    assert api.get("/users", user).status_code == status


def test_every_request_is_audited_with_who_what_status_and_where(api: Api) -> None:
    api.get("/cases", "disp")
    api.get("/audit", "wang")
    api.client.get("/cases", headers={"Authorization": "Bearer nonsense"})
    api.client.get("/")  # the pages hold no data: not audited
    api.client.get("/wp-admin/setup.php")  # no such route: a scanner does not fill the log

    rows = api.get("/audit", "sup", params={"limit": 10}).json()

    seen = [(r["actor"], r["role"], r["action"], r["target"], r["status"], r["remote"]) for r in reversed(rows)]
    assert seen == [
        ("disp", "dispatcher", "read", "GET /cases", 200, "testclient"),
        ("wang", "cleaner", "denied", "GET /audit", 403, "testclient"),
        (None, None, "auth_failed", "GET /cases", 401, "testclient"),
    ]
    only = api.get("/audit", "sup", params={"actor": "wang"}).json()
    assert [r["target"] for r in only] == ["GET /audit"]


def test_users_endpoint_lists_token_ids_never_secrets(api: Api) -> None:
    users = {u["name"]: u for u in api.get("/users", "sup").json()}

    assert {n: u["role"] for n, u in users.items()} == USERS
    assert users["disp"]["tokens"] == [api.tokens["disp"][4:16]]
    assert all(secret.split(".")[1] not in api.get("/users", "sup").text for secret in api.tokens.values())


def test_an_audit_write_failure_withholds_the_data(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("gridwatch.central.api.audit", broken)
    response = api.get("/cases", "disp")

    assert response.status_code == 503 and "inc-api" not in response.text


def test_failed_sign_ins_are_limited_per_address(tmp_path: Path) -> None:
    for api in make_api(tmp_path, ApiSettings(max_failures=3, failure_window_s=60)):
        bad = {"Authorization": "Bearer gwt_000000000000." + "A" * 43}
        assert [api.client.get("/cases", headers=bad).status_code for _ in range(3)] == [401, 401, 401]
        limited = api.get("/cases", "disp")
        assert limited.status_code == 429 and 0 < int(limited.headers["retry-after"]) <= 60
        assert api.client.get("/cases").status_code == 429
        with open_store(api.url) as store, store.session() as session:
            statuses = list(session.scalars(select(AuditRow.status)))
        assert statuses == [401, 401, 401]  # 429s are not written: a flood cannot fill the log


def test_a_lockout_holds_across_api_processes_and_restarts(tmp_path: Path) -> None:
    """The failures are counted in the database: two API apps on one store share the count, and a new app (a
    restarted process) still refuses the locked-out address."""
    settings = ApiSettings(max_failures=3, failure_window_s=60)
    bad = {"Authorization": "Bearer gwt_000000000000." + "A" * 43}
    for api in make_api(tmp_path, settings):
        with TestClient(create_app(api.url, settings)) as other:
            assert api.client.get("/cases", headers=bad).status_code == 401
            assert other.get("/cases", headers=bad).status_code == 401
            assert api.client.get("/cases", headers=bad).status_code == 401
            assert other.get("/cases", headers=bad).status_code == 429  # 3 failures over both processes
    with TestClient(create_app(api.url, settings)) as restarted:
        limited = restarted.get("/cases", headers={"Authorization": f"Bearer {api.tokens['disp']}"})
    assert limited.status_code == 429 and 0 < int(limited.headers["retry-after"]) <= 60


def test_the_audit_log_is_pruned_at_start_up_and_then_periodically(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    tokens = fill(url, tmp_path)
    now, ticks = [utcnow()], [0.0]
    with open_store(url) as store, store.session() as session:
        for days in (400, 30):
            auth.audit(session, actor="sup", action="read", target=f"GET /old/{days}", remote="r", status=200,
                       at=now[0] - timedelta(days=days))
        session.commit()
    app = create_app(url, ApiSettings(audit_retention_days=90, audit_prune_every_s=3600),
                     wall=lambda: now[0], clock=lambda: ticks[0])

    def targets() -> list[str]:
        with open_store(url) as store, store.session() as session:
            return [r.target for r in auth.audit_rows(session, 100)]

    with TestClient(app) as client:
        assert "GET /old/400" not in targets() and "GET /old/30" in targets()  # at start-up
        assert app.state.pruner.pruned == 1
        now[0] += timedelta(days=70)  # the 30-day-old row is 100 days old now
        client.get("/me", headers={"Authorization": f"Bearer {tokens['sup']}"})
        assert "GET /old/30" in targets()  # not due yet: at most one prune per hour
        ticks[0] = 3600.0
        client.get("/me", headers={"Authorization": f"Bearer {tokens['sup']}"})
        assert "GET /old/30" not in targets() and app.state.pruner.pruned == 2
    assert targets()[0].startswith("1 rows from before")  # the prune is in the log itself
    assert [t for t in targets() if t == "GET /me"] == ["GET /me", "GET /me"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("audit_retention_days", 0), ("audit_retention_days", 40000), ("audit_retention_days", 1.5),
     ("failure_window_s", 0), ("max_failures", 0), ("audit_prune_every_s", 0)],
)
def test_bad_api_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(CentralError, match=rf"^api\.{field}: {value!r} is out of range"):
        ApiSettings(**{field: value})  # type: ignore[arg-type]


def test_healthz_is_open_and_tells_nothing(api: Api) -> None:
    response = api.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_pages_hold_no_data_and_send_the_token_as_a_header(api: Api) -> None:
    page = api.client.get("/")
    script = api.client.get("/ui/app.js")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "GW-" not in page.text and "inc-api" not in page.text
    assert '<script src="/ui/app.js">' in page.text and "http" not in page.text.replace("http://www.w3.org", "")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert script.headers["content-type"].startswith("text/javascript")
    assert 'Authorization: "Bearer " + token()' in script.text and "sessionStorage" in script.text
    assert "localStorage" not in script.text and "?token" not in script.text
    assert 'data-src="/ui/cases"' in api.client.get("/cleaner").text


def test_dashboard_fragment_draws_the_readable_cases_by_grid_cell(api: Api) -> None:
    page = api.get("/ui/dashboard", "disp").text

    assert page.count('class="case"') == 2  # the uncalibrated case is listed but not drawn
    assert f"grid {GRID_A}" in page and f"grid {GRID_B}" in page
    assert page.count("<tr>") == 4  # header + 3 cases
    assert api.get("/ui/dashboard", "wang").text.count("<tr>") == 2


def test_empty_map() -> None:
    assert "no located cases" in svg_map([])
