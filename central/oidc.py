"""OIDC bearer JWTs checked offline against the issuer's public keys (a JWKS file or one PEM key).

The identity provider (Keycloak, Authentik, Azure AD, ...) signs access tokens; the API verifies them with keys
read from a file (`--oidc-jwks`, e.g. the provider's `jwks_uri` document saved by the operator), so it needs no
network and no JWT library: `cryptography` does the signatures.

Key rotation: the file is read at start-up (a bad file stops the start) and again (`KeyRing`) when it changed
(its modification time, size or inode, looked at no more than every `STAT_EVERY_S` seconds) or when a token
names a key id the ring does not hold (a re-read at most every `REREAD_UNKNOWN_KID_S` seconds, so tokens with
made-up key ids cannot make the server read the file on every request). A file that cannot be read or parsed
while the server runs keeps the keys in use and is logged; replace the file atomically (write a temporary file,
then rename it over the old one) so a reader never sees half a file.

Accepted: RS256 (RSA), ES256 (P-256) and EdDSA (Ed25519), each only with a key of its own type (no `none`, no
HMAC, so a public key can never be used as a shared secret). The token must name the configured issuer (`iss`),
include the audience (`aud`), and be inside `nbf`..`exp` (60 s leeway); the `sub` claim then names a user in the
user table, whose role applies.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from gridwatch.central.auth import Unauthenticated
from gridwatch.central.errors import CentralError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | Ed25519PublicKey
Keys = dict[str | None, PublicKey]
MAX_JWT_BYTES = 16 * 1024
STAT_EVERY_S = 5.0
REREAD_UNKNOWN_KID_S = 30.0

log = logging.getLogger("gridwatch.central.api")


class OidcError(CentralError, ValueError):
    """The OIDC settings cannot be used (missing issuer or audience, an unreadable or invalid key file)."""


@dataclass
class KeyRingStats:
    reloads: int = 0  # times the file was read again and its keys taken
    failures: int = 0  # re-reads that failed (the keys in use were kept)
    unknown_kid_rereads: int = 0  # re-reads asked for by a token with a key id the ring did not hold


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class KeyRing:
    """The issuer's public keys from `path`, re-read when the file changes or a token names an unknown key id
    (module docstring). `clock` is monotonic seconds; thread-safe (the API verifies tokens in a thread pool)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic, stat_every_s: float = STAT_EVERY_S,
                 reread_unknown_kid_s: float = REREAD_UNKNOWN_KID_S) -> None:
        self.path, self.clock = path, clock
        self.stat_every_s, self.reread_unknown_kid_s = stat_every_s, reread_unknown_kid_s
        self.stats = KeyRingStats()
        self._lock = threading.Lock()
        self._seen = _signature(path)
        self.keys: Keys = load_keys(path)  # at start-up a bad file is an error, not a warning
        self._statted = self._reread = clock()

    def find(self, kid: str | None) -> PublicKey | None:
        """The key for `kid` (or the key without an id), after a re-read if the file changed or `kid` is new."""
        with self._lock:
            now = self.clock()
            if now - self._statted >= self.stat_every_s:
                self._statted = now
                if _signature(self.path) != self._seen:
                    self._reload(now)
            key = _lookup(self.keys, kid)
            if key is None and now - self._reread >= self.reread_unknown_kid_s:
                self.stats.unknown_kid_rereads += 1
                self._reload(now)
                key = _lookup(self.keys, kid)
            return key

    def _reload(self, now: float) -> None:
        self._reread = now
        seen = _signature(self.path)
        try:
            keys = load_keys(self.path)
        except OidcError as exc:
            self.stats.failures += 1
            log.warning("api: %s; keeping the %d OIDC keys in use", exc, len(self.keys))
            return
        self._seen = seen
        if keys != self.keys:
            log.info("api: OIDC keys reloaded from %s: key ids %s", self.path, sorted(map(str, keys)))
        self.keys = keys
        self.stats.reloads += 1


def _lookup(keys: Keys, kid: str | None) -> PublicKey | None:
    return keys.get(kid) or keys.get(None)


@dataclass(frozen=True)
class OidcSettings:
    """Issuer, audience and the issuer's public keys: a `KeyRing` over the key file, or fixed keys by key id
    (`None`: a key without an id)."""

    issuer: str
    audience: str
    keys: KeyRing | Keys
    leeway_s: float = 60.0

    def key(self, kid: str | None) -> PublicKey | None:
        return self.keys.find(kid) if isinstance(self.keys, KeyRing) else _lookup(self.keys, kid)


def load_settings(issuer: str | None, audience: str | None, key_file: str | None, *,
                  clock: Callable[[], float] = time.monotonic) -> OidcSettings | None:
    """The settings when a key file is given (None: OIDC is off); issuer and audience are then required. The keys
    are a `KeyRing`: read now (an unusable file is an `OidcError`) and again when the file changes."""
    if not key_file:
        return None
    if not issuer or not audience:
        raise OidcError("OIDC needs the issuer and the audience too (--oidc-issuer, --oidc-audience)")
    return OidcSettings(issuer, audience, KeyRing(Path(key_file), clock=clock))


def load_keys(path: Path) -> Keys:
    """The public keys in a JWKS JSON file or a PEM public key file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OidcError(f"OIDC key file {path}: {exc.strerror}") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        return {None: _pem_key(path, data)}
    try:
        keys = json.loads(data)["keys"]
        loaded = {k.get("kid"): jwk_key(k) for k in keys if k.get("use", "sig") == "sig"}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise OidcError(f"OIDC key file {path}: not a JWKS document with usable keys ({exc})") from None
    if not loaded:
        raise OidcError(f"OIDC key file {path} holds no signing key")
    return loaded


def _pem_key(path: Path, data: bytes) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise OidcError(f"OIDC key file {path}: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | Ed25519PublicKey):
        raise OidcError(f"OIDC key file {path}: {type(key).__name__} keys are not supported")
    return key


def _b64(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"bad base64url: {exc}") from None


def _int(value: str) -> int:
    return int.from_bytes(_b64(value), "big")


def jwk_key(jwk: dict[str, Any]) -> PublicKey:
    """One JWK (RSA, EC P-256 or OKP Ed25519) as a public key."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "RSA":
        return rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
    if kty == "EC" and crv == "P-256":
        return ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), ec.SECP256R1()).public_key()
    if kty == "OKP" and crv == "Ed25519":
        return Ed25519PublicKey.from_public_bytes(_b64(jwk["x"]))
    raise ValueError(f"unsupported key type {kty}/{crv}")


def verify_jwt(token: str, settings: OidcSettings, now: float) -> dict[str, Any]:
    """The claims of a valid token (signature, issuer, audience, times), or `Unauthenticated` with the reason."""
    if len(token) > MAX_JWT_BYTES:
        raise Unauthenticated("JWT too large")
    try:
        head_b64, body_b64, sig_b64 = token.split(".")
        header, claims = json.loads(_b64(head_b64)), json.loads(_b64(body_b64))
        signature = _b64(sig_b64)
    except ValueError:
        raise Unauthenticated("malformed JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Unauthenticated("malformed JWT")
    kid = header.get("kid")
    if not isinstance(kid, str | None):
        raise Unauthenticated("malformed JWT")
    key = settings.key(kid)
    if key is None:
        raise Unauthenticated("JWT signed with an unknown key id")
    _verify_signature(key, str(header.get("alg")), signature, f"{head_b64}.{body_b64}".encode())
    _check_claims(claims, settings, now)
    return claims


def _verify_signature(key: PublicKey, alg: str, signature: bytes, signed: bytes) -> None:
    try:
        if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey) and len(signature) == 64:
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
        elif alg == "EdDSA" and isinstance(key, Ed25519PublicKey):
            key.verify(signature, signed)
        else:
            raise Unauthenticated(f"JWT algorithm {alg!r} does not fit the key (RS256, ES256, EdDSA)")
    except InvalidSignature:
        raise Unauthenticated("JWT signature does not verify") from None


def _check_claims(claims: dict[str, Any], settings: OidcSettings, now: float) -> None:
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if claims.get("iss") != settings.issuer:
        raise Unauthenticated("JWT from another issuer")
    if settings.audience not in audiences:
        raise Unauthenticated("JWT for another audience")
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        raise Unauthenticated("JWT without a numeric exp")
    if now > exp + settings.leeway_s:
        raise Unauthenticated("JWT expired")
    if now < nbf - settings.leeway_s:
        raise Unauthenticated("JWT not valid yet")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise Unauthenticated("JWT without a subject")
