"""OIDC bearer JWTs: signatures (RS256, ES256, EdDSA) against a JWKS or PEM file, claims, and the API's use."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from gridwatch.central import auth
from gridwatch.central.api import ApiSettings, create_app
from gridwatch.central.auth import Unauthenticated
from gridwatch.central.oidc import (
    REREAD_UNKNOWN_KID_S,
    STAT_EVERY_S,
    KeyRing,
    OidcError,
    OidcSettings,
    load_keys,
    load_settings,
    verify_jwt,
)
from gridwatch.central.store import open_store
from tests.central.jwt_helpers import AUDIENCE, ISSUER, KEYS, NOW, b64, jwk, mint


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(key, alg) for alg, key in KEYS.items()]}))
    return path


@pytest.fixture
def settings(jwks_file: Path) -> OidcSettings:
    loaded = load_settings(ISSUER, AUDIENCE, str(jwks_file))
    assert loaded is not None
    return loaded


@pytest.mark.parametrize("alg", list(KEYS))
def test_each_algorithm_verifies_with_its_key(settings: OidcSettings, alg: str) -> None:
    claims = verify_jwt(mint(KEYS[alg], alg, kid=alg), settings, NOW)
    assert claims["sub"] == "user-42"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: mint(KEYS["RS256"], "RS256", kid="RS256", iss="https://evil.example"), "another issuer"),
        (lambda: mint(KEYS["RS256"], "RS256", kid="RS256", aud=["other"]), "another audience"),
        (lambda: mint(KEYS["RS256"], "RS256", kid="RS256", exp=NOW - 61), "expired"),
        (lambda: mint(KEYS["RS256"], "RS256", kid="RS256", nbf=NOW + 61), "not valid yet"),
        (lambda: mint(KEYS["RS256"], "RS256", kid="RS256", sub=""), "without a subject"),
        (lambda: mint(KEYS["RS256"], "RS256", kid="RS256", exp="soon"), "numeric exp"),
        (lambda: mint(KEYS["RS256"], "RS256", kid="nope"), "unknown key id"),
        (lambda: mint(KEYS["ES256"], "RS256", kid="ES256"), "does not fit the key"),  # algorithm confusion
        (lambda: mint(KEYS["EdDSA"], "EdDSA", kid="ES256"), "does not fit the key"),
        (
            lambda: mint(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", kid="RS256"),
            "signature does not verify",
        ),
        (lambda: mint(KEYS["RS256"], "RS256", kid="RS256")[:-4] + "AAAA", "signature does not verify"),
        (lambda: b64(b'{"alg":"none","kid":"RS256"}') + ".e30.", "'none' does not fit"),
        (lambda: "e30.e30.", "unknown key id"),
        (lambda: "!!.??.", "malformed JWT"),
        (lambda: b64(b'{"alg":"RS256","kid":["k"]}') + ".e30.", "malformed JWT"),
        (lambda: b64(b"[]") + ".e30.", "malformed JWT"),
        (lambda: b64(b"\xff\xfe") + ".e30.", "malformed JWT"),
        (lambda: "a.b.c" + "x" * 20_000, "too large"),
    ],
)
def test_bad_tokens_are_refused_with_the_reason(settings: OidcSettings, token: Any, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        verify_jwt(token(), settings, NOW)


def test_hs256_with_the_public_key_as_secret_is_refused(settings: OidcSettings) -> None:
    import hmac

    header, body = b64(b'{"alg":"HS256","kid":"RS256"}'), b64(json.dumps({"iss": ISSUER}).encode())
    mac = hmac.new(b"public", f"{header}.{body}".encode(), "sha256").digest()
    with pytest.raises(Unauthenticated, match="'HS256' does not fit"):
        verify_jwt(f"{header}.{body}.{b64(mac)}", settings, NOW)


def test_audience_list_and_leeway_are_accepted(settings: OidcSettings) -> None:
    token = mint(KEYS["ES256"], "ES256", kid="ES256", aud=["account", AUDIENCE], exp=NOW - 30)
    assert verify_jwt(token, settings, NOW)["aud"] == ["account", AUDIENCE]


def test_a_pem_key_file_serves_tokens_without_kid(tmp_path: Path) -> None:
    pem = tmp_path / "issuer.pem"
    pem.write_bytes(
        KEYS["RS256"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    settings = OidcSettings(ISSUER, AUDIENCE, load_keys(pem))
    assert verify_jwt(mint(KEYS["RS256"], "RS256", kid=None), settings, NOW)["sub"] == "user-42"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{}", "not a JWKS document"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "unsupported key type"),
        ('{"keys": [{"kty": "RSA", "use": "enc", "n": "AQ", "e": "AQAB"}]}', "holds no signing key"),
        ("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", "issuer.key"),
    ],
)
def test_bad_key_files_stop_start_up(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "issuer.key"
    path.write_text(content)
    with pytest.raises(OidcError, match=reason):
        load_keys(path)


def test_settings_need_issuer_and_audience_and_a_readable_file(tmp_path: Path) -> None:
    assert load_settings(None, None, None) is None
    with pytest.raises(OidcError, match="issuer and the audience"):
        load_settings(ISSUER, None, str(tmp_path / "jwks.json"))
    with pytest.raises(OidcError, match="No such file"):
        load_settings(ISSUER, AUDIENCE, str(tmp_path / "missing.json"))


# --- key rotation -------------------------------------------------------------------------------------------


def write_jwks(path: Path, **keys: str) -> None:
    """Replace the key file atomically (temporary file, then rename), as an operator or a sync job would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": [jwk(KEYS[alg], kid) for kid, alg in keys.items()]}))
    tmp.replace(path)


def rotating(tmp_path: Path) -> tuple[Path, list[float], OidcSettings]:
    path = tmp_path / "rotating.json"
    write_jwks(path, old="ES256")
    ticks = [0.0]
    loaded = load_settings(ISSUER, AUDIENCE, str(path), clock=lambda: ticks[0])
    assert loaded is not None and isinstance(loaded.keys, KeyRing)
    return path, ticks, loaded


def test_a_token_with_a_new_key_id_rereads_the_key_file(tmp_path: Path) -> None:
    path, ticks, _ = rotating(tmp_path)
    ring = KeyRing(path, clock=lambda: ticks[0], stat_every_s=1e9)  # only the unknown kid can make it look
    settings = OidcSettings(ISSUER, AUDIENCE, ring)
    new_token = mint(KEYS["EdDSA"], "EdDSA", kid="new")
    with pytest.raises(Unauthenticated, match="unknown key id"):
        verify_jwt(new_token, settings, NOW)  # not in the file yet; the file was just read: no re-read
    write_jwks(path, old="ES256", new="EdDSA")  # the provider publishes its next key
    ticks[0] = REREAD_UNKNOWN_KID_S - 1
    with pytest.raises(Unauthenticated, match="unknown key id"):
        verify_jwt(new_token, settings, NOW)  # ... at most every REREAD_UNKNOWN_KID_S
    ticks[0] = REREAD_UNKNOWN_KID_S
    assert verify_jwt(new_token, settings, NOW)["sub"] == "user-42"
    assert verify_jwt(mint(KEYS["ES256"], "ES256", kid="old"), settings, NOW)["sub"] == "user-42"
    assert (ring.stats.unknown_kid_rereads, ring.stats.reloads) == (1, 1)


def test_made_up_key_ids_cannot_make_the_server_read_the_file_on_every_request(tmp_path: Path) -> None:
    _, ticks, settings = rotating(tmp_path)
    assert isinstance(settings.keys, KeyRing)
    for i in range(100):
        ticks[0] = REREAD_UNKNOWN_KID_S + i * 0.1  # 10 s of made-up key ids
        with pytest.raises(Unauthenticated, match="unknown key id"):
            verify_jwt(mint(KEYS["EdDSA"], "EdDSA", kid=f"junk-{i}"), settings, NOW)
    assert settings.keys.stats.unknown_kid_rereads == 1 and settings.keys.stats.reloads == 1


def test_a_changed_file_drops_a_retired_key_within_the_stat_interval(tmp_path: Path) -> None:
    path, ticks, settings = rotating(tmp_path)
    old_token = mint(KEYS["ES256"], "ES256", kid="old")
    assert verify_jwt(old_token, settings, NOW)
    write_jwks(path, new="EdDSA")  # the old key is retired (e.g. leaked)
    ticks[0] = STAT_EVERY_S - 0.1
    assert verify_jwt(old_token, settings, NOW)  # not looked at yet
    ticks[0] = STAT_EVERY_S
    with pytest.raises(Unauthenticated, match="unknown key id"):
        verify_jwt(old_token, settings, NOW)
    assert verify_jwt(mint(KEYS["EdDSA"], "EdDSA", kid="new"), settings, NOW)


def test_a_broken_key_file_keeps_the_keys_in_use_and_is_counted(tmp_path: Path) -> None:
    path, ticks, settings = rotating(tmp_path)
    path.write_text('{"keys": [')  # half a file, written in place
    ticks[0] = STAT_EVERY_S
    assert verify_jwt(mint(KEYS["ES256"], "ES256", kid="old"), settings, NOW)
    assert isinstance(settings.keys, KeyRing) and settings.keys.stats.failures == 1
    write_jwks(path, old="ES256", new="EdDSA")  # fixed
    ticks[0] = 2 * STAT_EVERY_S
    assert verify_jwt(mint(KEYS["EdDSA"], "EdDSA", kid="new"), settings, NOW)
    assert settings.keys.stats.reloads == 1


def test_the_api_takes_a_rotated_key_without_a_restart(tmp_path: Path) -> None:
    path, ticks, settings = rotating(tmp_path)
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    with open_store(url) as store, store.session() as session:
        auth.add_user(session, "li", auth.DISPATCHER, oidc_subject="user-42")
        session.commit()

    def me(client: TestClient, alg: str, kid: str) -> int:
        token = mint(KEYS[alg], alg, kid=kid, exp=time.time() + 60, iat=time.time())
        return client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code

    with TestClient(create_app(url, ApiSettings(oidc=settings))) as client:
        assert (me(client, "ES256", "old"), me(client, "EdDSA", "new")) == (200, 401)
        write_jwks(path, new="EdDSA")
        ticks[0] = REREAD_UNKNOWN_KID_S
        assert (me(client, "EdDSA", "new"), me(client, "ES256", "old")) == (200, 401)


@pytest.fixture
def oidc_client(tmp_path: Path, settings: OidcSettings) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    with open_store(url) as store, store.session() as session:
        auth.add_user(session, "li", auth.DISPATCHER, oidc_subject="user-42")
        auth.add_user(session, "gone", auth.VIEWER, oidc_subject="user-43")
        auth.disable_user(session, "gone", auth.utcnow())
        session.commit()
    live = OidcSettings(ISSUER, AUDIENCE, settings.keys)
    with TestClient(create_app(url, ApiSettings(oidc=live))) as client:
        yield client


def test_the_api_maps_a_jwt_subject_to_its_user_and_role(oidc_client: TestClient) -> None:
    def me(sub: str) -> Any:
        token = mint(KEYS["EdDSA"], "EdDSA", kid="EdDSA", sub=sub, exp=time.time() + 60, iat=time.time())
        return oidc_client.get("/me", headers={"Authorization": f"Bearer {token}"})

    assert me("user-42").json() == {"name": "li", "role": "dispatcher", "via": "oidc"}
    assert me("user-99").json()["detail"] == "not authenticated: no user has this OIDC subject"
    assert me("user-43").json()["detail"] == "not authenticated: user disabled"
    assert me("user-42").status_code == 200 and me("user-99").status_code == 401
