"""Central's MQTT session behind a small interface (connect / subscribe / ack / publish / stop), with a fake.

`MqttSession` is the paho side, kept to what the broker needs to see:

- QoS 1 subscriptions with `manual_ack=True`: the service acknowledges a message only after its transaction
  (one per batch of messages) committed (`ack`). A message that came on a connection that has since dropped
  is not acknowledged (that PUBACK would go nowhere): the broker redelivers it and the `event_id` key makes it
  a harmless duplicate.
- A persistent session (stable client id; MQTT 5 `clean_start=False` + session expiry, MQTT 3.1.1
  `clean_session=False`) so messages published while central is down are delivered when it comes back.
- paho reconnects with backoff (1 s .. 30 s); the handler's `on_connected` subscribes again.
- `publish` sends case assignments at QoS 1 and reports each PUBACK to `on_ack`, so the wire `Publisher` can
  drain the dispatch outbox over this same connection (`PublishPort`).

`FakeSession` is the in-memory twin for unit tests: the test delivers messages and decides on drops and acks.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridwatch.central.publish_reader import PUBLISH, RawPublish, flatten_properties, take_publishes
from gridwatch.wire.mqtt import BrokerURL, make_client
from gridwatch.wire.mqtt import Protocol as MqttProtocol
from gridwatch.wire.publisher import TransportHandler, reason_value

log = logging.getLogger("gridwatch.central")

SESSION_EXPIRY_S = 7 * 24 * 3600
PUBACK = 0x40  # MQTT control packet type 4, no flags
_PUBACK = struct.Struct("!BBH")  # type, remaining length (2), packet id: a reason code may be left out (MQTT 5 3.4.2.1)
RECV_CHUNK = 256 * 1024  # bytes asked of the socket at a time (`BufferedSocket`)
PAUSE_S = 0.01  # how long the network loop sleeps per turn while the caller has no room (`buffer_reads`)


class BufferedSocket:
    """paho's socket, read in large chunks: paho asks for a packet's first byte, then its length byte by byte,
    then the rest, each a `recv` system call, four per incident message; here one `recv` serves many messages.

    Issue 8: each of those calls released and took back the GIL, so the network thread waited on the batch worker
    (and the worker on it) four times per message. `pending()` tells paho's loop that buffered bytes are ready
    without waiting in `select` (the hook paho has for TLS sockets, whose own buffer is included). Everything else
    is the wrapped socket's.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def recv(self, bufsize: int) -> bytes:
        if not self._buffer:
            data = self._sock.recv(max(bufsize, RECV_CHUNK))
            if len(data) <= bufsize:
                return bytes(data)
            self._buffer += data
        out = bytes(self._buffer[:bufsize])
        del self._buffer[:bufsize]
        return out

    def take_publishes(self, v5: bool, limit: int = 1 << 30) -> list[RawPublish]:
        """The complete QoS 0/1 PUBLISH packets at the head of the buffer (at most `limit`), taken out of it
        (`publish_reader`)."""
        if not self._buffer:
            return []
        msgs, used = take_publishes(self._buffer, v5, limit)
        if used:
            del self._buffer[:used]
        return msgs

    def publish_next(self) -> bool:
        """Whether the next packet may be a PUBLISH: the buffer is empty (the socket's next bytes are unknown) or
        starts with one."""
        return not self._buffer or self._buffer[0] & 0xF0 == PUBLISH

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buffer) + int(inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def buffer_reads(client: mqtt.Client, on_publishes: Callable[[list[RawPublish]], None] | None = None,
                 room: Callable[[], int] | None = None) -> None:
    """Make `client` read through a `BufferedSocket` on every (re)connect.

    With `on_publishes`, each time paho's loop is about to read a packet, the complete QoS 0/1 PUBLISH packets
    already buffered go to `on_publishes` first, parsed in one pass (`publish_reader`), and paho reads what is
    left: one turn of its loop per `recv` instead of one per message (issue 8). Only for a client with
    `manual_ack` (paho would acknowledge a QoS 1 message itself) and no per-topic callbacks.

    `room()`: how many more messages the caller takes now. At 0 or below, no PUBLISH is read: the broker's
    messages wait in the socket and then in the broker (TCP back-pressure), while other packets already buffered
    (PUBACKs of our own publishes, PINGRESP) are still read. The loop sleeps `PAUSE_S` per turn meanwhile. A
    pause longer than about 1.5 keep-alives ends in a reconnect (the PINGRESP waits behind the messages), which
    the broker's redelivery makes harmless."""
    create = client._create_socket  # paho's one place that makes a connection's socket (a private method)

    def buffered() -> Any:
        return BufferedSocket(create())

    client._create_socket = buffered  # type: ignore[method-assign]
    if on_publishes is None:
        return
    read_packet = client._packet_read  # paho's read of one packet (private, like `_create_socket`)
    v5 = client.protocol == mqtt.MQTTv5

    def read_publishes_first() -> mqtt.MQTTErrorCode:
        sock = client._sock
        if not isinstance(sock, BufferedSocket) or client._in_packet["command"] != 0:  # inside a packet
            return read_packet()
        space = room() if room is not None else 1 << 30
        if space <= 0 and sock.publish_next():
            time.sleep(PAUSE_S)  # the caller is full: leave the messages to the socket and the broker
            return mqtt.MQTTErrorCode.MQTT_ERR_AGAIN
        msgs = sock.take_publishes(v5, space) if space > 0 else []
        if msgs:
            with client._msgtime_mutex:  # what paho notes after each packet it reads (keep-alive)
                client._last_bytes_received = time.monotonic()
            on_publishes(msgs)
            if room is not None and room() <= 0 and sock.publish_next():
                return mqtt.MQTTErrorCode.MQTT_ERR_AGAIN  # full now: the next turn waits
        return read_packet()

    client._packet_read = read_publishes_first  # type: ignore[method-assign]


@dataclass(frozen=True)
class Inbound:
    """One received MQTT message. `generation` names the connection it came on (for `Session.ack`)."""

    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 1
    properties: dict[str, str] = field(default_factory=dict)
    generation: int = 0
    # what the worker made of the payload ahead of its batch (`CentralService._prefetch`); None: not yet
    parsed: Any = field(default=None, compare=False, repr=False)

    @property
    def is_evidence(self) -> bool:
        return self.topic.endswith("/evidence")

    def with_parsed(self, parsed: Any) -> Inbound:
        """The same message with `parsed` (by the constructor: 3x faster than `dataclasses.replace`)."""
        return Inbound(self.topic, self.payload, self.mid, self.qos, self.properties, self.generation, parsed)


class SessionHandler(Protocol):
    """What the session reports, from its network thread."""

    def on_connected(self) -> None: ...

    def on_subscribed(self, refused: list[str]) -> None:
        """The subscriptions were answered; `refused` names the reasons of any that were not granted."""
        ...

    def on_disconnected(self) -> None: ...

    def on_message(self, msg: Inbound) -> None: ...

    def on_ack(self, mid: int, reason_code: int) -> None:
        """The PUBACK of one of our own publishes (MQTT 5 reason code; >= 0x80 refused)."""
        ...


class Session(Protocol):
    """Central's connection to the broker."""

    def connect(self, handler: SessionHandler) -> None:
        """Connect in the background (retrying); report to `handler`."""
        ...

    def subscribe(self, topics: list[str]) -> None: ...

    def ack(self, msg: Inbound) -> None:
        """Acknowledge a message after its commit; a no-op for a message of a connection that is gone."""
        ...

    def ack_many(self, msgs: Sequence[Inbound]) -> None:
        """`ack` each of `msgs` (a committed batch), in order."""
        ...

    def publish(self, topic: str, payload: bytes, properties: dict[str, str], *, retain: bool = False) -> int | None:
        """Send at QoS 1; the message id `on_ack` will report, or None when not connected."""
        ...

    def stop(self) -> None:
        """Disconnect; the broker keeps the session (and queues for it) until it expires."""
        ...


class MqttSession:
    """paho-mqtt: persistent session, manual acknowledgement, reconnect with backoff.

    - `client_id`: names the broker session. Keep it stable across restarts, or messages published while
      central was down are lost; give each instance of a share group its own.
    - `session_expiry_s`: how long (MQTT 5) the broker keeps the session and queues messages while central
      is down.
    - `receive_maximum`: (MQTT 5) how many QoS 1 messages the broker may send before central acknowledges any;
      the service sets it above its batch size, since it acknowledges a batch only after the batch's commit.
      Without it Mosquitto sends at most its `max_inflight_messages` (20 in the shipped config); MQTT 3.1.1
      has no such setting, so there a batch holds at most that many messages.
    - `room()`: how many more messages the caller takes now; at 0 the session stops reading messages until it
      has room again (`buffer_reads`). Mosquitto 2.0.11 sends a further `receive_maximum` messages for each
      PUBACK, so with a backlog the Receive Maximum alone does not bound what arrives.
    """

    def __init__(self, broker: BrokerURL, client_id: str, protocol: MqttProtocol = "5", *,
                 session_expiry_s: int = SESSION_EXPIRY_S, ca_file: str | None = None,
                 receive_maximum: int | None = None, room: Callable[[], int] | None = None) -> None:
        self.broker, self.protocol, self.session_expiry_s = broker, protocol, session_expiry_s
        self.receive_maximum = receive_maximum
        self._client = make_client(client_id, broker, protocol, manual_ack=True, clean_start=False, ca_file=ca_file)
        buffer_reads(self._client, self._on_publishes, room)
        self._handler: SessionHandler | None = None
        self._generation = 0
        self.connected = False

    def connect(self, handler: SessionHandler) -> None:
        self._handler = handler
        client = self._client
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        if self.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
            if self.receive_maximum is not None:
                props.ReceiveMaximum = self.receive_maximum
            client.connect_async(self.broker.host, self.broker.port, keepalive=30, clean_start=False, properties=props)
        else:
            client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        client.loop_start()

    def subscribe(self, topics: list[str]) -> None:
        self._client.subscribe([(topic, 1) for topic in topics])

    def ack(self, msg: Inbound) -> None:
        if msg.qos > 0 and msg.generation == self._generation and self.connected:
            self._client.ack(msg.mid, msg.qos)

    def ack_many(self, msgs: Sequence[Inbound]) -> None:
        """The PUBACKs of a committed batch as one queued write: paho's `ack` queues each as its own packet, wakes
        the network thread for each and sends each with its own system call (issue 8: 400 of each per batch).
        The broker reads the same PUBACK packets, in the same order. QoS 2 (never subscribed) goes one by one."""
        if not self.connected:
            return
        mine = [msg for msg in msgs if msg.generation == self._generation]
        pubacks = b"".join(_PUBACK.pack(PUBACK, 2, msg.mid) for msg in mine if msg.qos == 1)
        if pubacks:
            self._client._packet_queue(PUBACK, pubacks, 0, 0)  # paho's own queue: written in order, by its thread
        for msg in mine:
            if msg.qos == 2:
                self._client.ack(msg.mid, msg.qos)

    def publish(self, topic: str, payload: bytes, properties: dict[str, str], *, retain: bool = False) -> int | None:
        if not self.connected:
            return None
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        return int(info.mid) if info.rc == mqtt.MQTT_ERR_SUCCESS else None

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self.connected = False

    # paho callbacks (network thread) ------------------------------------------------------------------
    def _on_connect(self, _c: mqtt.Client, _ud: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("central: broker %s refused the connection: %s", self.broker, reason)
            return
        self._generation += 1
        self.connected = True
        log.info("central: connected to %s (session present: %s)", self.broker, flags.session_present)
        if self._handler:
            self._handler.on_connected()

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, _mid: int, reasons: list[Any], _props: Any) -> None:
        if self._handler:
            self._handler.on_subscribed([str(r) for r in reasons if r.is_failure])

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connected = False
        self._generation += 1
        if self._handler:
            self._handler.on_disconnected()

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        props = flatten_properties(getattr(msg, "properties", None))
        if self._handler:
            self._handler.on_message(
                Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, props, self._generation)
            )

    def _on_publishes(self, msgs: list[RawPublish]) -> None:
        """PUBLISH packets parsed from the read buffer (`buffer_reads`): as `_on_message` would report them."""
        if self._handler:
            for m in msgs:
                self._handler.on_message(Inbound(m.topic, m.payload, m.mid, m.qos, m.properties, self._generation))

    def _on_publish(self, _c: mqtt.Client, _ud: Any, mid: int, reason: Any, _props: Any) -> None:
        if self._handler:
            self._handler.on_ack(mid, reason_value(reason))


@dataclass
class FakeSession:
    """In-memory `Session` for unit tests.

    `deliver()` hands the handler a message as the broker would; `acked` lists the acknowledged message ids,
    `published` what was sent. With `auto_ack`, publishes are acknowledged inside publish().
    """

    connected: bool = False
    auto_ack: bool = True
    subscriptions: list[str] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    published: list[tuple[str, bytes]] = field(default_factory=list)
    unacked: list[int] = field(default_factory=list)
    _handler: SessionHandler | None = None
    _generation: int = 0
    _mid: int = 0

    def connect(self, handler: SessionHandler) -> None:
        self._handler = handler
        self.set_connected(True)

    def subscribe(self, topics: list[str]) -> None:
        self.subscriptions = list(topics)
        if self._handler:
            self._handler.on_subscribed([])

    def ack(self, msg: Inbound) -> None:
        if msg.generation == self._generation and self.connected:
            self.acked.append(msg.mid)

    def ack_many(self, msgs: Sequence[Inbound]) -> None:
        for msg in msgs:
            self.ack(msg)

    def publish(self, topic: str, payload: bytes, properties: dict[str, str], *, retain: bool = False) -> int | None:
        if not self.connected:
            return None
        self._mid += 1
        self.published.append((topic, payload))
        if self.auto_ack and self._handler:
            self._handler.on_ack(self._mid, 0)
        else:
            self.unacked.append(self._mid)
        return self._mid

    def deliver(self, topic: str, payload: bytes, properties: dict[str, str] | None = None) -> Inbound:
        self._mid += 1
        msg = Inbound(topic, payload, self._mid, 1, properties or {}, self._generation)
        if self._handler:
            self._handler.on_message(msg)
        return msg

    def set_connected(self, up: bool) -> None:
        self.connected = up
        self._generation += 1
        if self._handler:
            (self._handler.on_connected if up else self._handler.on_disconnected)()

    def ack_all(self, reason_code: int = 0) -> None:
        mids, self.unacked = self.unacked, []
        for mid in mids:
            if self._handler:
                self._handler.on_ack(mid, reason_code)

    def stop(self) -> None:
        self.connected = False


class PublishPort:
    """The publishing side of a `Session` as a wire `Transport`, so the wire `Publisher` can drain the dispatch
    outbox over central's own connection. The service forwards the session's connect / disconnect / PUBACK
    events to the publisher; starting and stopping the connection stays with the service."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def start(self, handler: TransportHandler) -> None:
        """Nothing to do: the session is connected by the service, which routes its events to `handler`."""

    def publish(self, topic: str, payload: bytes, properties: dict[str, str], *, retain: bool = False) -> int | None:
        return self.session.publish(topic, payload, properties, retain=retain)

    def stop(self) -> None:
        """Nothing to do: the service stops the session after the publisher."""
