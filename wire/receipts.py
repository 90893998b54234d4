"""End-to-end receipts: central tells a gateway which of its messages it has durably committed.

Why: Mosquitto sends the PUBACK before it saves (even with `autosave_on_changes`), so a broker crash can lose a
message the gateway has already been told is safe. With receipts the gateway keeps each outbox row after the
PUBACK (`published`) and deletes it only when central's receipt names it; a row with no receipt is sent again
(after a reconnect, or once receipts for later rows show it was lost, or after a long timeout: see
`gridwatch.wire.publisher`), and central's idempotency on `event_id` makes the resend harmless.

The message, on `{prefix}/{site}/{gateway}/receipt` (`gridwatch.wire.topics.receipt_topic`), QoS 1, from central
only (the shipped ACL), JSON::

    {"v": 1, "incident": ["<event_id>", ...], "evidence": ["<event_id>", ...]}

An id is listed once central's transaction for that message committed, whatever its outcome (stored, duplicate,
dead-lettered): every final outcome ends the gateway's duty to resend. Incident and evidence messages share the
event's `event_id`, so the kind is part of the receipt. At most `MAX_RECEIPT_IDS` ids per message and
`MAX_RECEIPT_BYTES` bytes; each id a canonical lowercase UUID. The gateway treats receipts as untrusted input:
`parse_receipt` is strict, and `ReceiptListener` accepts them only on the gateway's own receipt topic, ignores ids
it does not hold, and counts what it refused.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gridwatch.errors import GridwatchError

log = logging.getLogger(__name__)

ReceiptKind = Literal["incident", "evidence"]
RECEIPT_KINDS: tuple[ReceiptKind, ...] = ("incident", "evidence")
RECEIPT_VERSION = 1
MAX_RECEIPT_IDS = 500  # per message, both kinds together: ~20 KB of JSON
MAX_RECEIPT_BYTES = 32 * 1024
EVENT_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ReceiptError(GridwatchError, ValueError):
    """A receipt message that is not exactly the documented shape; the message says what is wrong."""


@dataclass(frozen=True)
class Receipt:
    """The event ids of one receipt message, per kind."""

    incident: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()

    def ids(self, kind: ReceiptKind) -> tuple[str, ...]:
        return self.incident if kind == "incident" else self.evidence

    def __len__(self) -> int:
        return len(self.incident) + len(self.evidence)


def is_event_id(text: object) -> bool:
    """A canonical lowercase UUID string (how `IncidentEvent.event_id` is serialized)."""
    return isinstance(text, str) and EVENT_ID_RE.match(text) is not None


def parse_receipt(payload: bytes) -> Receipt:
    """The receipt in `payload`, or `ReceiptError`: over the size or id bound, not JSON, unknown keys, wrong
    version, an id that is not a canonical UUID."""
    if len(payload) > MAX_RECEIPT_BYTES:
        raise ReceiptError(f"receipt of {len(payload)} bytes is over the {MAX_RECEIPT_BYTES}-byte bound")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReceiptError(f"receipt is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ReceiptError("receipt must be a JSON object")
    unknown = set(data) - {"v", *RECEIPT_KINDS}
    if unknown:
        raise ReceiptError(f"receipt has unknown keys {sorted(unknown)[:5]}")
    if data.get("v") != RECEIPT_VERSION or isinstance(data.get("v"), bool):
        raise ReceiptError(f"receipt version must be {RECEIPT_VERSION}, not {str(data.get('v'))[:20]!r}")
    lists = {kind: _id_list(data.get(kind, []), kind) for kind in RECEIPT_KINDS}
    total = sum(len(ids) for ids in lists.values())
    if total > MAX_RECEIPT_IDS:
        raise ReceiptError(f"receipt names {total} ids; at most {MAX_RECEIPT_IDS} per message")
    return Receipt(lists["incident"], lists["evidence"])


def _id_list(value: object, kind: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ReceiptError(f"receipt {kind!r} must be a list of event ids")
    if len(value) > MAX_RECEIPT_IDS:
        raise ReceiptError(f"receipt {kind!r} names {len(value)} ids; at most {MAX_RECEIPT_IDS} per message")
    bad = [v for v in value if not is_event_id(v)]
    if bad:
        raise ReceiptError(f"receipt {kind!r} has {len(bad)} ids that are not canonical UUIDs, e.g. "
                           f"{str(bad[0])[:40]!r}")
    return tuple(value)


def encode_receipts(entries: Iterable[tuple[ReceiptKind, str]], max_ids: int = MAX_RECEIPT_IDS) -> Iterator[bytes]:
    """Receipt messages for `(kind, event_id)` entries: each id once, at most `max_ids` per message, in order.
    Ids that are not canonical UUIDs are left out (no gateway could hold them)."""
    if not 1 <= max_ids <= MAX_RECEIPT_IDS:
        raise ValueError(f"max_ids must be in 1..{MAX_RECEIPT_IDS}, not {max_ids}")
    seen: set[tuple[ReceiptKind, str]] = set()
    batch: dict[ReceiptKind, list[str]] = {kind: [] for kind in RECEIPT_KINDS}
    count = 0
    for kind, event_id in entries:
        if (kind, event_id) in seen or kind not in RECEIPT_KINDS or not is_event_id(event_id):
            continue
        seen.add((kind, event_id))
        batch[kind].append(event_id)
        count += 1
        if count == max_ids:
            yield _encode(batch)
            batch, count = {kind: [] for kind in RECEIPT_KINDS}, 0
    if count:
        yield _encode(batch)


def _encode(batch: dict[ReceiptKind, list[str]]) -> bytes:
    body: dict[str, object] = {"v": RECEIPT_VERSION}
    body.update({kind: ids for kind, ids in batch.items() if ids})
    return json.dumps(body, separators=(",", ":")).encode()


class Settler(Protocol):
    """What the listener needs from the outbox: delete the rows a receipt names, say how many there were."""

    def settle(self, kind: str, keys: Iterable[str]) -> int: ...


@dataclass
class ReceiptStats:
    messages: int = 0  # receipt messages accepted
    settled: int = 0  # outbox rows deleted because a receipt named them
    unknown: int = 0  # ids this gateway does not hold (already settled, a duplicate receipt, someone else's)
    refused: int = 0  # messages refused: wrong topic or not a valid receipt
    last_error: str | None = None


@dataclass
class ReceiptListener:
    """Subscribed to the gateway's own receipt topic; settles outbox rows. Runs on the transport's network thread.

    `on_settled(n)` is called after rows were deleted (the publisher's `notify`, so a waiting `drain` sees it)."""

    topic: str
    outbox: Settler
    stats: ReceiptStats = field(default_factory=ReceiptStats)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic != self.topic:
            self._refuse(f"receipt on {topic[:200]!r}, not this gateway's {self.topic!r}")
            return
        try:
            receipt = parse_receipt(payload)
        except ReceiptError as exc:
            self._refuse(str(exc))
            return
        settled = sum(self.outbox.settle(kind, receipt.ids(kind)) for kind in RECEIPT_KINDS if receipt.ids(kind))
        with self._lock:
            self.stats.messages += 1
            self.stats.settled += settled
            self.stats.unknown += len(receipt) - settled

    def _refuse(self, reason: str) -> None:
        with self._lock:
            self.stats.refused += 1
            self.stats.last_error = reason
            first = self.stats.refused == 1
        (log.warning if first else log.debug)("refused a receipt (%d so far): %s", self.stats.refused, reason)
