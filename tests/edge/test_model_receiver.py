"""Reassembling a model on the gateway, and refusing everything that is not a trusted, intact model for it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gridwatch.edge.model_receiver import Complete, Receiver, Refused
from gridwatch.wire.model_signing import PublicKey
from gridwatch.wire.model_update import MIN_CHUNK_BYTES, ModelBundle, parse_control
from tests.model_updates import fake_bundle, keypair, messages

TOPIC = "gridwatch/v1/s1/gw1/control"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def receiver(tmp: Path, trusted: list[PublicKey], clock: Clock | None = None, last_issued_ms: int = 0,
             max_bytes: int = 10**6) -> Receiver:
    return Receiver("gridwatch/v1", "s1", "gw1", tmp / "staging", {k.key_id: k for k in trusted}, max_bytes, 60.0,
                    clock or Clock(), last_issued_ms=last_issued_ms)


def feed(rx: Receiver, payloads: list[bytes], topic: str = TOPIC) -> list[Refused | Complete]:
    return [r for p in payloads if (r := rx.on_message(topic, p)) is not None]


@pytest.fixture
def bundle(tmp_path: Path) -> ModelBundle:
    return fake_bundle(tmp_path / "model", size=5 * MIN_CHUNK_BYTES + 123)


def test_chunks_in_any_order_with_duplicates_reassemble_the_file(tmp_path: Path, bundle: ModelBundle) -> None:
    key, public = keypair()
    offer, *chunks = messages(bundle, "s1", "gw1", key)
    shuffled = chunks + chunks[:3]  # QoS 1 redelivers
    random.Random(4).shuffle(shuffled)
    rx = receiver(tmp_path, [public])
    (done,) = feed(rx, [offer, offer, *shuffled])
    assert isinstance(done, Complete)
    assert done.model_path.read_bytes() == bundle.model_path.read_bytes()
    assert done.manifest_path.read_bytes() == bundle.manifest
    assert (rx.stats.chunks, rx.stats.duplicates, rx.stats.dropped) == (6, 4, 0)


def test_out_of_range_wrong_length_and_foreign_chunks_are_dropped(tmp_path: Path, bundle: ModelBundle) -> None:
    key, public = keypair()
    offer, *chunks = messages(bundle, "s1", "gw1", key)
    head, _, data = chunks[0].partition(b"\n")
    tid = parse_control(offer)[0].transfer_id
    bad = [
        head.replace(b'"index":0', b'"index":99') + b"\n" + data,  # beyond count
        head.replace(b'"count":6', b'"count":7') + b"\n" + data,  # disagrees with the offer
        head + b"\n" + data[:-1],  # short
        head.replace(b'"gateway_id":"gw1"', b'"gateway_id":"gw2"') + b"\n" + data,  # another gateway's
        head.replace(tid.encode(), b"f" * 32) + b"\n" + data,  # unknown transfer
    ]
    rx = receiver(tmp_path, [public])
    results = feed(rx, [offer, *bad, *chunks])
    assert [type(r) for r in results] == [Complete]
    assert rx.stats.dropped == 5
    assert isinstance(results[0], Complete) and results[0].model_path.read_bytes() == bundle.model_path.read_bytes()


@pytest.mark.parametrize("who", ["unsigned", "unknown key"])
def test_unsigned_and_unknown_key_offers_are_refused_before_a_byte_is_written(
    tmp_path: Path, bundle: ModelBundle, who: str,
) -> None:
    _key, public = keypair()
    stranger, _ = keypair()
    payloads = messages(bundle, "s1", "gw1", None if who == "unsigned" else stranger)
    rx = receiver(tmp_path, [public])
    results = feed(rx, payloads)
    assert len(results) == 1 and isinstance(results[0], Refused)
    assert who in results[0].reason
    assert rx.stats.dropped == len(payloads) - 1
    assert list((tmp_path / "staging").iterdir()) == []


def test_a_statement_altered_after_signing_is_refused(tmp_path: Path, bundle: ModelBundle) -> None:
    key, public = keypair()
    offer, *chunks = messages(bundle, "s1", "gw1", key)
    tampered = offer.replace(b'"version":"2.0.0"', b'"version":"9.9.9"')
    assert tampered != offer
    (result,) = feed(receiver(tmp_path, [public]), [tampered, *chunks])
    assert isinstance(result, Refused) and "bad signature" in result.reason


def test_a_model_signed_for_another_gateway_or_delivered_on_another_topic_is_refused(
    tmp_path: Path, bundle: ModelBundle,
) -> None:
    key, public = keypair()
    (result,) = feed(receiver(tmp_path, [public]), messages(bundle, "s1", "gw2", key))
    assert isinstance(result, Refused) and "signed for s1/gw2" in result.reason
    results = feed(receiver(tmp_path / "b", [public]), messages(bundle, "s1", "gw1", key)[:1],
                   topic="gridwatch/v1/s1/gw2/control")
    assert isinstance(results[0], Refused) and "not this gateway's control topic" in results[0].reason


def test_a_chunk_corrupted_in_transit_fails_the_whole_file_hash(tmp_path: Path, bundle: ModelBundle) -> None:
    key, public = keypair()
    offer, *chunks = messages(bundle, "s1", "gw1", key)
    chunks[2] = chunks[2][:-1] + bytes([chunks[2][-1] ^ 0xFF])
    (result,) = feed(receiver(tmp_path, [public]), [offer, *chunks])
    assert isinstance(result, Refused) and result.reason.startswith("corrupted")
    assert list((tmp_path / "staging").iterdir()) == []


def test_a_replayed_older_model_and_an_oversized_one_are_refused(tmp_path: Path, bundle: ModelBundle) -> None:
    key, public = keypair()
    (old,) = feed(receiver(tmp_path, [public], last_issued_ms=5_000),
                  messages(bundle, "s1", "gw1", key, issued_ms=5_000))
    assert isinstance(old, Refused) and "replayed" in old.reason
    (big,) = feed(receiver(tmp_path / "b", [public], max_bytes=1000), messages(bundle, "s1", "gw1", key))
    assert isinstance(big, Refused) and "max_model_mb" in big.reason


def test_an_incomplete_transfer_times_out_and_is_removed(tmp_path: Path, bundle: ModelBundle) -> None:
    key, public = keypair()
    clock = Clock()
    rx = receiver(tmp_path, [public], clock)
    offer, *chunks = messages(bundle, "s1", "gw1", key)
    assert feed(rx, [offer, *chunks[:4]]) == []
    clock.now += 59
    assert rx.expire(clock.now) is None
    clock.now += 2
    refused = rx.expire(clock.now)
    assert refused is not None and "timed out: 4 of 6 chunks" in refused.reason
    assert list((tmp_path / "staging").iterdir()) == []
    assert feed(rx, chunks[4:]) == [] and rx.stats.dropped == 2  # late chunks of the dropped transfer
