"""Receipts to gateways: after a message's transaction committed, tell its gateway (`gridwatch.wire.receipts`).

The service calls `ReceiptSender.after_commit(msg, result)` once per committed message (any final outcome: stored,
duplicate, dead-lettered), `after_discard(msg)` for evidence it does not store (no evidence folder), and `flush()`
when its inbox has been idle for a moment. Ids are collected per gateway and published at QoS 1 on
`{prefix}/{site}/{gateway}/receipt` in batches of at most `MAX_RECEIPT_IDS`: when a batch is full, when the oldest
id waited `max_delay_s` (1 s), or on `flush()`. Memory is bounded by one batch, and a trickle of messages costs the
broker about one receipt per gateway per second, not one per message.

Nothing here needs to be durable: a receipt lost (central dies before the flush, the connection is down, the
broker crashes) only means the gateway sends the message again after its timeout or reconnect, central finds it
a duplicate, and the receipt goes out again. The gateway is the one taken from the topic, which the ACL binds to
the account that wrote it, so a receipt only ever goes back to the sender of the message.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gridwatch.central.ingest import IngestResult
from gridwatch.central.transport import Inbound
from gridwatch.central.trust import MAX_INCIDENT_BYTES
from gridwatch.wire.receipts import MAX_RECEIPT_IDS, ReceiptKind, encode_receipts, is_event_id
from gridwatch.wire.topics import parse_edge_topic, receipt_topic

log = logging.getLogger("gridwatch.central")

Publish = Callable[[str, bytes], "int | None"]
ENVELOPE_EVENT_ID = re.compile(rb'"event_id"\s*:\s*"([0-9a-f-]{36})"')
ENVELOPE_SCAN_BYTES = 4096


@dataclass
class ReceiptStats:
    ids: int = 0  # event ids collected after a commit
    messages: int = 0  # receipt messages handed to the broker
    dropped: int = 0  # receipt messages not sent (not connected): the gateway resends, central receipts again
    unnamed: int = 0  # committed messages with no event id to name (e.g. a dead-lettered non-JSON payload)


class ReceiptSender:
    """Collect `(gateway, kind, event_id)` after commits; publish batched receipts (module docstring).

    `publish(topic, payload)` sends at QoS 1 and returns the message id, or None when not connected.
    """

    def __init__(self, publish: Publish, prefix: str, *, max_ids: int = MAX_RECEIPT_IDS, max_delay_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.publish, self.prefix = publish, prefix
        self.max_ids, self.max_delay_s, self.clock = max_ids, max_delay_s, clock
        self.stats = ReceiptStats()
        self._pending: dict[tuple[str, str], list[tuple[ReceiptKind, str]]] = {}
        self._count = 0
        self._since: float | None = None
        self._lock = threading.Lock()

    def after_commit(self, msg: Inbound, result: IngestResult) -> None:
        """`msg` is committed with `result`: note its id for its gateway; publish if a batch is due."""
        self._note(msg, result.event_id if result.kind != "dead_letter" else _dead_letter_id(msg))

    def after_discard(self, msg: Inbound) -> None:
        """`msg` is evidence this central does not store (no evidence folder): receipt it by the event id it
        carries (as a dead letter is), so the gateway stops resending it; there is nothing to commit first."""
        self._note(msg, _dead_letter_id(msg))

    def _note(self, msg: Inbound, event_id: str | None) -> None:
        where = parse_edge_topic(self.prefix, msg.topic)
        kind: ReceiptKind = "evidence" if msg.is_evidence else "incident"
        if where is None or where.kind != kind or not is_event_id(event_id):
            self.stats.unnamed += 1
            return
        assert event_id is not None
        with self._lock:
            self._pending.setdefault((where.site, where.gateway), []).append((kind, event_id))
            self._count += 1
            self.stats.ids += 1
            if self._since is None:
                self._since = self.clock()
            due = self._count >= self.max_ids or self.clock() - self._since >= self.max_delay_s
        if due:
            self.flush()

    def flush(self) -> int:
        """Publish every collected id now; returns how many receipt messages were sent."""
        with self._lock:
            pending, self._pending, self._count, self._since = self._pending, {}, 0, None
        sent = 0
        for (site, gateway), entries in pending.items():
            topic = receipt_topic(self.prefix, site, gateway)
            for payload in encode_receipts(entries, self.max_ids):
                if self.publish(topic, payload) is None:
                    self.stats.dropped += 1
                else:
                    sent += 1
        self.stats.messages += sent
        return sent


def _dead_letter_id(msg: Inbound) -> str | None:
    """Best effort: the event id of a message that was dead-lettered (its sender must stop resending it too)."""
    if msg.is_evidence:
        if msg.properties.get("event_id"):
            return msg.properties["event_id"]
        found = ENVELOPE_EVENT_ID.search(msg.payload[:ENVELOPE_SCAN_BYTES])
        return found.group(1).decode() if found else None
    if len(msg.payload) > MAX_INCIDENT_BYTES:
        return None
    try:
        data = json.loads(msg.payload)
    except (UnicodeDecodeError, ValueError):
        return None
    value = data.get("event_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
