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
from gridwatch.central.oidc import OidcError, OidcSettings, load_keys, load_settings, verify_jwt
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
