"""The receipt message (`gridwatch.wire.receipts`): strict parsing of untrusted input, bounded encoding."""

from __future__ import annotations

import json
import uuid

import pytest

from gridwatch.wire.receipts import (
    MAX_RECEIPT_BYTES,
    MAX_RECEIPT_IDS,
    Receipt,
    ReceiptError,
    encode_receipts,
    parse_receipt,
)
from gridwatch.wire.topics import receipt_topic


def ids(n: int, seed: str = "r") -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{i}")) for i in range(n)]


def test_receipt_topic_sits_beside_the_gateway_s_status_and_control() -> None:
    assert receipt_topic("gridwatch/v1", "site-a", "gw-1") == "gridwatch/v1/site-a/gw-1/receipt"


def test_encode_and_parse_round_trip_per_kind() -> None:
    inc, ev = ids(3, "i"), ids(2, "e")
    (payload,) = encode_receipts([("incident", i) for i in inc] + [("evidence", e) for e in ev])
    assert parse_receipt(payload) == Receipt(tuple(inc), tuple(ev))
    assert json.loads(payload) == {"v": 1, "incident": inc, "evidence": ev}


def test_encode_chunks_at_the_id_bound_drops_repeats_and_ids_no_gateway_can_hold() -> None:
    many = ids(MAX_RECEIPT_IDS + 7)
    entries = [("incident", i) for i in many] + [("incident", many[0]), ("incident", "not-a-uuid"),
                                                  ("incident", many[1].upper())]
    payloads = list(encode_receipts(entries))  # type: ignore[arg-type]
    parsed = [parse_receipt(p) for p in payloads]
    assert [len(r) for r in parsed] == [MAX_RECEIPT_IDS, 7]
    assert [i for r in parsed for i in r.incident] == many
    assert all(len(p) <= MAX_RECEIPT_BYTES for p in payloads)


def test_encode_with_a_smaller_batch() -> None:
    assert [len(parse_receipt(p)) for p in encode_receipts([("evidence", i) for i in ids(5)], max_ids=2)] == [2, 2, 1]
    with pytest.raises(ValueError, match="max_ids"):
        list(encode_receipts([], max_ids=MAX_RECEIPT_IDS + 1))


@pytest.mark.parametrize(("payload", "message"), [
    (b"\xff\xfe", "not JSON"),
    (b"{not json", "not JSON"),
    (b"[]", "JSON object"),
    (b'{"v": 2, "incident": []}', "version"),
    (b'{"v": true, "incident": []}', "version"),
    (b'{"incident": []}', "version"),
    (b'{"v": 1, "incident": [], "delete_all": true}', "unknown keys"),
    (b'{"v": 1, "incident": "abc"}', "list of event ids"),
    (b'{"v": 1, "evidence": [1, 2]}', "not canonical UUIDs"),
    (b'{"v": 1, "incident": ["' + str(uuid.uuid4()).upper().encode() + b'"]}', "not canonical UUIDs"),
    (b'{"v": 1, "incident": ["%"]}', "not canonical UUIDs"),
])
def test_a_malformed_receipt_is_refused_with_the_reason(payload: bytes, message: str) -> None:
    with pytest.raises(ReceiptError, match=message):
        parse_receipt(payload)


def test_a_receipt_over_the_bounds_is_refused() -> None:
    half = MAX_RECEIPT_IDS // 2 + 1
    too_many = json.dumps({"v": 1, "incident": ids(half, "a"), "evidence": ids(half, "b")}).encode()
    assert len(too_many) <= MAX_RECEIPT_BYTES  # refused for the count, not the size
    with pytest.raises(ReceiptError, match="at most"):
        parse_receipt(too_many)
    with pytest.raises(ReceiptError, match="byte bound"):
        parse_receipt(b" " * (MAX_RECEIPT_BYTES + 1))
