"""Ed25519 keys for model updates: the publisher signs, each gateway verifies against the keys its site trusts.

- `gridwatch models keygen --out DIR/NAME` writes `NAME.key` (PKCS#8 PEM, created with mode 600) and `NAME.pub`
  (one line, `ed25519:<base64 of the 32-byte public key>`). The public line goes into the site config under
  `model_update.trusted_keys`; the private key stays with whoever publishes models.
- A private key is read only from a file that no group or other user can read or write (`chmod 600`); it is
  never taken from the command line.
- A key's id is the first 16 hex digits of the sha256 of its raw public key; an offer names the key that signed
  it, and a gateway that does not trust that key refuses the offer.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gridwatch.errors import GridwatchError

PUBLIC_PREFIX = "ed25519:"


class SigningKeyError(GridwatchError, ValueError):
    """A key file or public key line that cannot be used; the message names the file and the fix."""


class SignatureRefused(GridwatchError, ValueError):
    """A signature that does not verify against a trusted key; the message is the refusal reason."""


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    key: Ed25519PublicKey

    @property
    def text(self) -> str:
        raw = self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_public_key(text: str) -> PublicKey:
    """`ed25519:<base64>` (what `keygen` writes to NAME.pub) -> PublicKey; raise SigningKeyError otherwise."""
    text = text.strip()
    if not text.startswith(PUBLIC_PREFIX):
        raise SigningKeyError(f"public key {text[:24]!r}...: expected 'ed25519:<base64>' as written by "
                              "`gridwatch models keygen` into NAME.pub")
    try:
        raw = base64.b64decode(text[len(PUBLIC_PREFIX):], validate=True)
        key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise SigningKeyError(f"public key {text[:24]!r}...: not a 32-byte Ed25519 key in base64 ({exc}); copy the "
                              "line `gridwatch models keygen` wrote into NAME.pub") from None
    return PublicKey(key_id(key), key)


def generate(out: Path) -> tuple[Path, Path, PublicKey]:
    """Write `<out>.key` (mode 600, never overwritten) and `<out>.pub`; return both paths and the public key."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    key_path, pub_path = out.with_name(out.name + ".key"), out.with_name(out.name + ".pub")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningKeyError(f"{key_path} exists; choose another name or remove it first") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = PublicKey(key_id(private.public_key()), private.public_key())
    pub_path.write_text(public.text + "\n", encoding="ascii")
    return key_path, pub_path, public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key from a file only its owner can read; refuse anything looser."""
    try:
        st = path.stat()
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {exc.strerror}") from None
    loose = stat.S_IMODE(st.st_mode) & 0o077
    if loose:
        raise SigningKeyError(f"signing key {path} is accessible to group/others (mode "
                              f"{stat.S_IMODE(st.st_mode):03o}); run `chmod 600 {path}`")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"signing key {path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key {path}: not an Ed25519 key; make one with `gridwatch models keygen`")
    return key


def sign(key: Ed25519PrivateKey, message: bytes) -> tuple[str, str]:
    """(signature base64, key id)."""
    return base64.b64encode(key.sign(message)).decode("ascii"), key_id(key.public_key())


def verify(trusted: dict[str, PublicKey], key: str | None, signature: str | None, message: bytes) -> PublicKey:
    """Return the trusted key that signed `message`; raise SignatureRefused with the reason otherwise."""
    if not signature or not key:
        raise SignatureRefused("unsigned: the offer carries no signature")
    public = trusted.get(key)
    if public is None:
        raise SignatureRefused(f"signed with unknown key {key}; trusted keys: {sorted(trusted) or 'none'} "
                               "(model_update.trusted_keys in the site config)")
    try:
        raw = base64.b64decode(signature, validate=True)
        public.key.verify(raw, message)
    except (ValueError, InvalidSignature):
        raise SignatureRefused(f"bad signature (key {key}): the statement was altered or signed by another key")\
            from None
    return public
