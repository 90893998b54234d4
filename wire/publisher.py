"""Publishing: drain an outbox over a transport, QoS 1, delete a row only when its PUBACK says success.

`Transport` is the small interface (start / publish / stop) with two implementations side by side:
`MqttTransport` (paho-mqtt, MQTT 5 or 3.1.1, Last Will on the status topic) and `FakeTransport`
(`gridwatch.wire.fake_transport`, in-memory, for unit tests). `Publisher` owns one thread that sends the oldest
pending rows of any `OutboxStore`, at most `max_inflight` at a time. When the connection drops, in-flight rows
stay in the outbox and are sent again after reconnecting: delivery is at-least-once, and the receiver makes it
exactly-once by the message's idempotency key (`event_id` at central, `assignment_id` in a cleaner's app).

Bookkeeping is per connection: every connect and disconnect starts a new *generation*, and a PUBACK is matched
to a row by (generation, message id). A row whose publish() straddled a disconnect is not booked as in flight
(its PUBACK can never come) but stays pending for the next connection, and an acknowledgement that arrives
after its connection went down cannot settle a row sent on a later connection under a reused message id.
A PUBACK that matches no booked row is kept only while a send is between publish() and its booking (it may be
that send's), so acks of other messages (the status heartbeat) are never kept: after paho's message ids wrap at
65,535 none of them can settle a row that reused the id. A refused row (MQTT 5 reason code >= 0x80) is logged
with the reason's name and backed off exponentially (bounded), never resent in a loop.

What a successful PUBACK does to the row is `confirm`: `"puback"` deletes it (central's dispatch outbox, and a
gateway whose central predates receipts); `"receipt"` (the edge's default) keeps it as `published` until central's
receipt deletes it (`gridwatch.wire.receipts`), because the broker can lose an acknowledged message in a crash.
A published row is sent again after `resend_s[0]` once central has receipted a row published after it (so it
was lost on the way; the newest row of the outbox without that condition), and after `resend_s[1]` in any case;
both double per send. After every reconnect the newest
`max_inflight` published rows go again at once (the broker may have restarted without them): their receipts
then show which older ones it lost. Not all of them: a busy broker that drops connections would otherwise get
the whole backlog again on every reconnect. Central dedupes on `event_id`.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gridwatch.wire.mqtt import BrokerURL, make_client
from gridwatch.wire.mqtt import Protocol as MqttProtocol
from gridwatch.wire.outbox import ConfirmingStore, OutboxItem, OutboxStore

log = logging.getLogger(__name__)


class TransportHandler(Protocol):
    def on_connected(self) -> None: ...

    def on_disconnected(self) -> None: ...

    def on_ack(self, mid: int, reason_code: int) -> None:
        """The PUBACK of message `mid`: MQTT 5 reason code (0 = success; >= 0x80 = refused; always 0 on 3.1.1)."""
        ...


MessageCallback = Callable[[str, bytes], None]


class Subscribable(Protocol):
    """A transport that can also receive: the edge's control topic (model updates)."""

    def subscribe(self, topic: str, on_message: MessageCallback) -> None:
        """Subscribe at QoS 1 now and after every reconnect; `on_message(topic, payload)` runs on the network
        thread."""
        ...


class Transport(Protocol):
    def start(self, handler: TransportHandler) -> None: ...

    def publish(self, topic: str, payload: bytes, properties: dict[str, str], *, retain: bool = False) -> int | None:
        """Send at QoS 1; return the message id to expect in `on_ack`, or None when not connected."""
        ...

    def stop(self) -> None: ...


@dataclass
class Will:
    topic: str
    payload: bytes


class MqttTransport:
    """paho-mqtt with automatic reconnect (1 s .. 30 s backoff) and a retained Last Will for the status topic."""

    def __init__(self, broker: BrokerURL, client_id: str, protocol: MqttProtocol = "5", *, will: Will | None = None,
                 keepalive_s: int = 30, max_inflight: int = 20, ca_file: str | None = None) -> None:
        self.broker, self.protocol, self.keepalive_s = broker, protocol, keepalive_s
        self.client = make_client(client_id, broker, protocol, ca_file=ca_file)
        self.client.max_inflight_messages_set(max_inflight)
        if will:
            self.client.will_set(will.topic, will.payload, qos=1, retain=True)
        self._handler: TransportHandler | None = None
        self._subscriptions: dict[str, MessageCallback] = {}
        self.connected = False

    def subscribe(self, topic: str, on_message: MessageCallback) -> None:
        self._subscriptions[topic] = on_message
        if self.connected:
            self.client.subscribe(topic, qos=1)

    def start(self, handler: TransportHandler) -> None:
        self._handler = handler
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.keepalive_s)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, properties: dict[str, str], *, retain: bool = False) -> int | None:
        if not self.connected:
            return None
        if self.protocol == "5":
            info = self.client.publish(topic, payload, qos=1, retain=retain, properties=_mqtt5_props(properties))
        else:
            info = self.client.publish(topic, _v311_payload(payload, properties), qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return None
        return int(info.mid)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        failed = getattr(rc, "is_failure", False)
        if failed:
            log.warning("broker %s refused the connection: %s", self.broker, rc)
            return
        self.connected = True
        log.info("connected to %s (MQTT %s)", self.broker, self.protocol)
        for topic in self._subscriptions:
            self.client.subscribe(topic, qos=1)
        if self._handler:
            self._handler.on_connected()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, rc: object,
                       props: object) -> None:
        self.connected = False
        log.info("disconnected from %s: %s", self.broker, rc)
        if self._handler:
            self._handler.on_disconnected()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, rc: object, props: object) -> None:
        if self._handler:
            self._handler.on_ack(mid, reason_value(rc))

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        callback = self._subscriptions.get(msg.topic)
        if callback is None:
            return  # only exact topics are subscribed: anything else is not ours
        try:
            callback(msg.topic, bytes(msg.payload))
        except Exception:  # a bad message must not kill paho's network thread
            log.exception("handling a message on %s failed", msg.topic)


def _mqtt5_props(properties: dict[str, str]) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    content_type = properties.get("content_type")
    if content_type:
        props.ContentType = content_type
    user = [(k, v) for k, v in properties.items() if k != "content_type"]
    if user:
        props.UserProperty = user
    return props


def _v311_payload(payload: bytes, properties: dict[str, str]) -> bytes:
    """MQTT 3.1.1 has no properties: binary evidence travels in a JSON envelope instead."""
    if not properties:
        return payload
    envelope = {**properties, "data_b64": base64.b64encode(payload).decode("ascii")}
    return json.dumps(envelope).encode()


@dataclass
class PublisherStats:
    published: int = 0
    acked: int = 0
    refused: int = 0
    reconnects: int = 0
    stray_acks: int = 0  # PUBACKs of no outbox row (the edge's status heartbeat, an old connection's resend)
    resent: int = 0  # sends of a row that had been sent before (reconnect, refusal, receipt timeout)
    republished: int = 0  # published rows made due at once by a reconnect (confirm="receipt")
    unmatched: int = 0  # PUBACKs saying no subscription matched, with retry_unmatched (backed off, kept)


@dataclass(frozen=True)
class _EarlyAck:
    """A PUBACK that arrived while sends were between publish() and their booking: it can only belong to one of
    those sends (`during`, their tickets), and is forgotten once they are all booked."""

    reason_code: int
    during: frozenset[int]


@dataclass(frozen=True)
class _Refusal:
    count: int
    until: float


Confirm = Literal["puback", "receipt"]
# A published row with no receipt is sent again `RESEND_S[0]` s after its PUBACK (doubling per send, up to
# `RESEND_S[1]`) once a receipt has settled a later row (central moved past it: the broker lost it), and after
# `RESEND_S[1]` (doubling, up to `RETRY_CAP_S`) in any case. A central that is down or lagging behind a backlog
# settles no later row, so it is not flooded with copies of what is still queued for it.
RESEND_S = (30.0, 900.0)
RETRY_CAP_S = 4 * 3600.0


class Publisher:
    """Moves outbox rows to the transport. Thread-safe `notify()` wakes it when new rows arrive.

    `max_inflight` bounds the rows sent but not yet acknowledged (and so how many go out twice after a drop);
    `on_acked` is called, on the transport's thread, for each row the broker acknowledged. A row the broker
    refuses (MQTT 5 reason code >= 0x80) is logged with the reason's name and retried after `backoff_s[0]`,
    doubling per refusal up to `backoff_s[1]`; the other rows go on meanwhile. `confirm` says whether the PUBACK
    deletes the row or a receipt must (module docstring); with `"receipt"` an unreceipted row is sent again
    `resend_s[0]` after its PUBACK once a later row was receipted, `resend_s[1]` after it in any case (`RESEND_S`).
    With `retry_unmatched_s` > 0 a PUBACK saying no subscription matched (MQTT 5 reason 0x10: the message reaches
    nobody) settles nothing for that long after the first such PUBACK of the row: it is backed off like a refusal
    and sent again (central's case assignments: a cleaner app whose session a broker crash lost subscribes again
    within seconds). After that such a PUBACK settles the row as before (a topic nobody ever subscribes to must
    not pile up). `clock` is for tests.
    """

    def __init__(self, outbox: OutboxStore, transport: Transport, max_inflight: int = 20,
                 on_acked: Callable[[OutboxItem], None] | None = None, *,
                 backoff_s: tuple[float, float] = (1.0, 300.0), clock: Callable[[], float] = time.monotonic,
                 confirm: Confirm = "puback", resend_s: tuple[float, float] = RESEND_S,
                 retry_unmatched_s: float = 0.0) -> None:
        if confirm == "receipt" and not isinstance(outbox, ConfirmingStore):
            raise TypeError(f"confirm='receipt' needs an outbox that keeps published rows, not {type(outbox)}")
        if confirm not in ("puback", "receipt"):
            raise ValueError(f"confirm must be 'puback' or 'receipt', not {confirm!r}")
        self.outbox, self.transport, self.max_inflight = outbox, transport, max_inflight
        self.backoff_s, self.clock = backoff_s, clock
        self.confirm, self.resend_s, self.retry_unmatched_s = confirm, resend_s, retry_unmatched_s
        self._unmatched_since: dict[int, float] = {}  # row id -> first PUBACK "no matching subscribers"
        self.stats = PublisherStats()
        self._on_acked = on_acked
        self._generation = 0  # bumped on every connect and disconnect
        self._inflight: dict[tuple[int, int], OutboxItem] = {}  # (generation, mid) -> row
        self._open: dict[int, int] = {}  # send ticket -> row id, from before publish() until the row is booked
        self._tickets = itertools.count(1)
        self._early: dict[tuple[int, int], _EarlyAck] = {}  # acks that arrived before their send was booked
        self._refused: dict[int, _Refusal] = {}  # row id -> backoff
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    # TransportHandler -------------------------------------------------------------------------------------
    def on_connected(self) -> None:
        self._new_generation(connected=True)
        self.stats.reconnects += 1
        self._wake.set()

    def on_disconnected(self) -> None:
        self._new_generation()

    def _new_generation(self, connected: bool = False) -> None:
        """Every row in flight goes back to pending: it is still in the outbox and will be sent again. On a
        connect, so do the newest `max_inflight` published rows (the broker may have restarted without them):
        central's receipts for them move past every older row the broker lost, which then goes again too."""
        with self._lock:
            self._generation += 1
            self._inflight.clear()
            self._early.clear()
            if connected and self.confirm == "receipt":
                self.stats.republished += self._confirming().republish_newest(self.max_inflight)

    def _confirming(self) -> ConfirmingStore:
        assert isinstance(self.outbox, ConfirmingStore)
        return self.outbox

    def _delivered(self, item: OutboxItem) -> None:
        """Under the lock: a successful PUBACK. Delete the row, or (receipts) keep it until its receipt comes."""
        if self.confirm == "puback":
            self.outbox.ack(item.id)
            return
        low, high = self.resend_s
        doubling = 2 ** min(item.attempts, 30)
        now = self.clock()
        self._confirming().mark_published(item.id, now + min(high, low * doubling),
                                          now + min(RETRY_CAP_S, high * doubling))

    def on_ack(self, mid: int, reason_code: int) -> None:
        with self._lock:
            key = (self._generation, mid)
            item = self._inflight.pop(key, None)
            if item is None:
                if self._open:  # perhaps the PUBACK of a send whose publish() has not returned yet
                    self._early[key] = _EarlyAck(reason_code, frozenset(self._open))
                else:  # a message the publisher did not send (status), or a resend of an old connection's
                    self.stats.stray_acks += 1
                return
            settles = self._accepted(item.id, reason_code)
            if settles:
                # Settle the row before it leaves the books, under the lock: otherwise the sender could see it
                # neither in flight nor settled and publish it a second time.
                self._delivered(item)
        self._settle(item, reason_code, settles)

    def _settle(self, item: OutboxItem, reason_code: int, settles: bool) -> None:
        """Count a PUBACK whose row (on success) is already deleted; back a refused row off."""
        if settles:
            with self._lock:
                self._refused.pop(item.id, None)
            self.stats.acked += 1
            if self._on_acked:
                self._on_acked(item)
        else:
            self._back_off(item, reason_code)
        self._wake.set()

    def _accepted(self, item_id: int, reason_code: int) -> bool:
        """Under the lock, once per PUBACK: whether it settles its row: success, except 'no matching subscribers'
        within `retry_unmatched_s` of the row's first one."""
        if reason_code >= REFUSED:
            return False
        if reason_code != NO_MATCHING_SUBSCRIBERS or self.retry_unmatched_s <= 0:
            self._unmatched_since.pop(item_id, None)
            return True
        now = self.clock()
        first = self._unmatched_since.setdefault(item_id, now)
        if now - first >= self.retry_unmatched_s:
            self._unmatched_since.pop(item_id, None)
            return True
        return False

    def _back_off(self, item: OutboxItem, reason_code: int) -> None:
        with self._lock:
            count = self._refused[item.id].count + 1 if item.id in self._refused else 1
            low, high = self.backoff_s
            delay = min(high, low * 2 ** (count - 1))
            self._refused[item.id] = _Refusal(count, self.clock() + delay)
        if reason_code == NO_MATCHING_SUBSCRIBERS:
            self.stats.unmatched += 1
            (log.info if count == 1 else log.debug)(
                "no subscriber for outbox row %d (%s on %s) yet; retrying in %.0f s", item.id, item.kind, item.topic,
                delay)
            return
        self.stats.refused += 1
        log.warning("broker refused outbox row %d (%s on %s): %s (0x%02X), refusal %d; retrying in %.0f s",
                    item.id, item.kind, item.topic, reason_name(reason_code), reason_code, count, delay)

    # lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> Publisher:
        self.transport.start(self)
        self._thread.start()
        return self

    def notify(self) -> None:
        self._wake.set()

    def drain(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty (True) or `timeout_s` of wall time has passed (False). The deadline is on
        the monotonic clock: counting sleeps instead undercounts on a loaded machine (each 50 ms nap and outbox
        query takes longer), which made a 2 s drain last several seconds."""
        deadline = time.monotonic() + timeout_s
        pause = threading.Event()
        while len(self.outbox) > 0 and time.monotonic() < deadline:
            self._wake.set()
            pause.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        return len(self.outbox) == 0

    def stop(self, join_s: float = 5.0) -> None:
        """Stop the sending thread (waiting at most `join_s` for it) and the transport."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=join_s)
        self.transport.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)  # also the tick that retries rows whose backoff has passed
            self._wake.clear()
            try:
                self.send_pending()
            except Exception:  # the worker must never die because of one bad row or a broker hiccup
                log.exception("publisher loop error")

    # sending ----------------------------------------------------------------------------------------------
    def send_pending(self) -> int:
        """One step of the sender thread (tests call it directly): send the oldest rows that are neither in
        flight nor backing off, up to `max_inflight` in flight. Returns how many were handed to the transport."""
        now = self.clock()
        with self._lock:
            room = self.max_inflight - len(self._inflight) - len(self._open)
            busy = {i.id for i in self._inflight.values()} | set(self._open.values())
            busy |= {row for row, r in self._refused.items() if r.until > now}
        if room <= 0:
            return 0
        sent = 0
        for item in self._due(room, busy, now):
            if not self._send(item):
                break
            sent += 1
            if item.attempts > 0:
                self.stats.resent += 1
        return sent

    def _due(self, room: int, busy: set[int], now: float) -> list[OutboxItem]:
        if self.confirm == "receipt":
            return self._confirming().pending(room, exclude=busy, now=now)
        return self.outbox.pending(room, exclude=busy)

    def _send(self, item: OutboxItem) -> bool:
        """Publish one row; False when the transport is not connected (stop until woken again).

        The send takes a ticket under the lock *before* publish() is called and books the row under the lock
        after it returns; publish() itself runs outside the lock (paho calls `on_ack` from its network thread
        while holding its own locks, which publish() takes too). A PUBACK that arrives in between is kept as an
        early ack for the sends holding a ticket then, and forgotten when they are booked: it can never settle
        a row sent later under a message id that paho reused after wrapping at 65,535.
        """
        with self._lock:
            generation = self._generation
            ticket = next(self._tickets)
            self._open[ticket] = item.id
        mid: int | None = None
        try:
            mid = self.transport.publish(item.topic, item.payload, item.properties)
        finally:
            with self._lock:
                early = self._close_ticket(ticket, generation, mid)  # None too when the generation changed
                booked = mid is not None and self._generation == generation and early is None
                settles = early is not None and self._accepted(item.id, early.reason_code)
                if booked:
                    self._inflight[(generation, mid)] = item  # type: ignore[index]
                elif settles:
                    self._delivered(item)
        if mid is None:
            return False
        self.stats.published += 1
        if early is not None:
            self._settle(item, early.reason_code, settles)
        elif not booked:
            # The connection dropped inside publish(): this PUBACK can never arrive. The row stays pending and
            # goes out again on the next connection.
            self._wake.set()
        # After booking, outside the lock: a drop during this fsync returns the booked row to pending like any
        # other row in flight (it is never left half-booked), and an ack meanwhile finds it in the books.
        self.outbox.mark_attempt(item.id)
        return True

    def _close_ticket(self, ticket: int, generation: int, mid: int | None) -> _EarlyAck | None:
        """Under the lock: end the send's ticket, take its early ack if one came, forget acks nobody can claim."""
        del self._open[ticket]
        early = self._early.pop((generation, mid), None) if mid is not None else None
        if early is not None and ticket not in early.during:
            early = None  # it arrived before this send began: another message's
        open_now = set(self._open)
        self._early = {k: v for k, v in self._early.items() if v.during & open_now}
        return early


REFUSED = 0x80  # MQTT 5: a PUBACK reason code of 0x80 or more means the broker did not accept the message
NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5: accepted, but no subscription matched: nobody will get it


def reason_value(rc: object) -> int:
    """paho's PUBACK reason (a `ReasonCode`, or an int from older callback versions) as its numeric code."""
    value = getattr(rc, "value", rc)
    return int(value) if isinstance(value, int) else 0


def reason_name(code: int) -> str:
    """The MQTT 5 name of a PUBACK reason code ('Not authorized' for 0x87)."""
    try:
        return str(ReasonCode(PacketTypes.PUBACK, identifier=code).getName())
    except Exception:  # paho raises for a code it does not know
        return f"reason code {code}"
