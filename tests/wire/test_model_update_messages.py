"""The control-topic contract for model updates: framing, bounds, signatures, keys on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gridwatch.wire.model_signing import (
    SignatureRefused,
    SigningKeyError,
    generate,
    load_private_key,
    parse_public_key,
    sign,
    verify,
)
from gridwatch.wire.model_update import (
    MAX_CHUNK_BYTES,
    ControlMessageError,
    ModelBundleError,
    ModelChunk,
    ModelOffer,
    chunk_length,
    parse_control,
    read_bundle,
)
from tests.model_updates import fake_bundle, keypair, messages, private_file


def test_a_model_becomes_an_offer_and_chunks_that_add_up_to_the_file(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path / "m", size=5000)
    key, _ = keypair()
    payloads = messages(bundle, "s1", "gw1", key, chunk_size=1024)
    offer, rest = parse_control(payloads[0])
    assert isinstance(offer, ModelOffer) and rest == b""
    assert offer.chunk_count == 5 == len(payloads) - 1
    pieces = [parse_control(p) for p in payloads[1:]]
    assert all(isinstance(c, ModelChunk) for c, _ in pieces)
    assert [c.index for c, _ in pieces] == [0, 1, 2, 3, 4]  # type: ignore[union-attr]
    assert b"".join(d for _, d in pieces) == bundle.model_path.read_bytes()
    assert [len(d) for _, d in pieces] == [chunk_length(i, 5, 5000, 1024) for i in range(5)] == [1024] * 4 + [904]


@pytest.mark.parametrize(("payload", "reason"), [
    (b"no newline at all", "no header line"),
    (b'{"kind": "reload"}\n', "kind"),
    (b'{"kind": "model_chunk", "transfer_id": "' + b"a" * 32 + b'", "site_id": "s", "gateway_id": "g", '
     b'"index": -1, "count": 1}\n', "index"),
    (b'{"kind": "model_chunk", "transfer_id": "../../etc/passwd", "site_id": "s", "gateway_id": "g", '
     b'"index": 0, "count": 1}\n', "transfer_id"),
    (b'{"kind": "model_chunk", "transfer_id": "' + b"a" * 32 + b'", "site_id": "s", "gateway_id": "g", '
     b'"index": 0, "count": 1, "extra": 1}\n', "extra"),
    (b'{"kind": "model_chunk", "transfer_id": "' + b"a" * 32 + b'", "site_id": "s", "gateway_id": "g", '
     b'"index": "0", "count": 1}\n', "index"),
])
def test_malformed_control_messages_are_refused_with_the_field(payload: bytes, reason: str) -> None:
    with pytest.raises(ControlMessageError, match=reason):
        parse_control(payload)


def test_a_chunk_larger_than_the_bound_is_refused() -> None:
    head = json.dumps({"kind": "model_chunk", "transfer_id": "a" * 32, "site_id": "s", "gateway_id": "g",
                       "index": 0, "count": 1}).encode()
    with pytest.raises(ControlMessageError, match="exceeds"):
        parse_control(head + b"\n" + b"x" * (MAX_CHUNK_BYTES + 1))


def test_signature_verifies_only_with_the_trusted_key_and_the_exact_statement() -> None:
    key, public = keypair()
    other, _ = keypair()
    sig, kid = sign(key, b"statement")
    assert verify({public.key_id: public}, kid, sig, b"statement") == public
    with pytest.raises(SignatureRefused, match="bad signature"):
        verify({public.key_id: public}, kid, sig, b"statement!")
    osig, okid = sign(other, b"statement")
    with pytest.raises(SignatureRefused, match="unknown key"):
        verify({public.key_id: public}, okid, osig, b"statement")
    with pytest.raises(SignatureRefused, match="unsigned"):
        verify({public.key_id: public}, None, None, b"statement")


def test_keygen_writes_a_private_key_only_its_owner_reads_and_a_public_line(tmp_path: Path) -> None:
    key_path, pub_path, public = generate(tmp_path / "keys" / "models")
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert parse_public_key(pub_path.read_text()).key_id == public.key_id
    signature, kid = sign(load_private_key(key_path), b"x")
    assert kid == public.key_id
    verify({kid: public}, kid, signature, b"x")
    with pytest.raises(SigningKeyError, match="exists"):
        generate(tmp_path / "keys" / "models")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_private_key_readable_by_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    key, _ = keypair()
    path = private_file(tmp_path / "k.key", key, mode)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_private_key(path)
    os.chmod(path, 0o600)
    assert load_private_key(path) is not None


def test_public_key_lines_that_are_not_ed25519_are_refused() -> None:
    for text in ("ssh-ed25519 AAAA", "ed25519:not-base64!", "ed25519:AAAA"):
        with pytest.raises(SigningKeyError):
            parse_public_key(text)


def test_a_bundle_whose_weights_differ_from_the_manifest_is_not_published(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path / "m")
    bundle.model_path.write_bytes(b"retrained but not re-exported")
    with pytest.raises(ModelBundleError, match="differs from its manifest"):
        read_bundle(tmp_path / "m")
    with pytest.raises(ModelBundleError, match=r"exactly one \.onnx"):
        read_bundle(tmp_path)
