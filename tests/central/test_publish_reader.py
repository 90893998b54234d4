"""Central's own PUBLISH parser (`central.publish_reader`): the same messages paho would make, and everything it
does not handle left to paho, byte for byte."""

from __future__ import annotations

import struct
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import gridwatch.central.service as service_module
from gridwatch.app.broker import MosquittoBroker
from gridwatch.app.poll import wait_until
from gridwatch.central.publish_reader import RawPublish, flatten_properties, take_publishes
from gridwatch.central.service import INBOX_BATCHES, CentralService, Inbox
from gridwatch.central.transport import BufferedSocket, Inbound, MqttSession
from gridwatch.wire.mqtt import BrokerURL
from tests.central.mqtt_helpers import connected
from tests.central.test_ingest_rate_paths import subscribed

TOPIC = "gridwatch/v1/site-a/gw-01/cam-01/incident"


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def frame(header: int, body: bytes) -> bytes:
    return bytes([header]) + varint(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, qos: int = 1, mid: int = 1, props: Properties | None = None,
                   v5: bool = True, flags: int = 0) -> tuple[int, bytes]:
    """(fixed header byte, everything after the remaining length): a PUBLISH as a broker sends it."""
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"")
    if v5:
        body += (props or Properties(PacketTypes.PUBLISH)).pack()
    return 0x30 | flags | (qos << 1), body + payload


def paho_reads(header: int, body: bytes, v5: bool) -> RawPublish:
    """What paho's own decoder makes of the packet, as central's session reported it."""
    proto = MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311
    got = _packet.decode_publish(header, body, proto)
    return RawPublish(got.qos, got.mid, got.topic.decode("utf-8"), flatten_properties(got.properties),
                      bytes(got.payload))


def props_of(user: list[tuple[str, str]], content_type: str | None = None, expiry: int | None = None) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    if user:
        props.UserProperty = user
    if content_type is not None:
        props.ContentType = content_type
    if expiry is not None:
        props.MessageExpiryInterval = expiry
    return props


def aliased(alias: int) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.TopicAlias = alias
    return props


text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(topic=text.filter(bool), payload=st.binary(max_size=300), qos=st.sampled_from([0, 1]),
       mid=st.integers(1, 65535), v5=st.booleans(), flags=st.sampled_from([0, 0x08, 0x01, 0x09]),
       user=st.lists(st.tuples(text, text), max_size=3), content_type=st.none() | text,
       expiry=st.none() | st.integers(0, 2**32 - 1))
def test_each_packet_reads_as_paho_reads_it(topic: str, payload: bytes, qos: int, mid: int, v5: bool, flags: int,
                                            user: list[tuple[str, str]], content_type: str | None,
                                            expiry: int | None) -> None:
    props = props_of(user, content_type, expiry) if v5 else None
    header, body = publish_packet(topic.encode(), payload, qos, mid, props, v5, flags)
    msgs, used = take_publishes(frame(header, body) * 2, v5)
    assert msgs == [paho_reads(header, body, v5)] * 2
    assert used == 2 * len(frame(header, body))


def stream() -> tuple[bytes, list[int]]:
    """Three PUBLISH packets, QoS 1, 0, 1 (one with properties); and the offset where each ends."""
    packets = [frame(*publish_packet(TOPIC.encode(), b"a" * 200, 1, 7)),
               frame(*publish_packet(TOPIC.encode(), b"", 0, 0, props_of([("k", "v")], "application/json"))),
               frame(*publish_packet(TOPIC.encode(), b"x" * 20_000, 1, 8))]
    ends = [sum(len(p) for p in packets[:i + 1]) for i in range(len(packets))]
    return b"".join(packets), ends


def test_a_packet_not_yet_complete_is_left_whole_at_every_cut() -> None:
    data, ends = stream()
    for cut in range(len(data) + 1):
        msgs, used = take_publishes(data[:cut], True)
        complete = [end for end in ends if end <= cut]
        assert used == (complete[-1] if complete else 0), cut
        assert len(msgs) == len(complete)


def test_the_limit_stops_after_that_many() -> None:
    data, ends = stream()
    msgs, used = take_publishes(data, True, limit=2)
    assert len(msgs) == 2 and used == ends[1]


@pytest.mark.parametrize("name, packet", [
    ("QoS 2: paho keeps state for it", frame(*publish_packet(TOPIC.encode(), b"p", qos=2))),
    ("QoS 3 is malformed", frame(0x36, publish_packet(TOPIC.encode(), b"p")[1])),
    ("a PUBACK", frame(0x40, b"\x00\x07")),
    ("a PINGRESP", frame(0xD0, b"")),
    ("an empty topic (an MQTT 5 topic alias)", frame(*publish_packet(b"", b"p", props=aliased(3)))),
    ("a topic that is not UTF-8", frame(*publish_packet(b"gridwatch/\xff", b"p"))),
    ("a remaining length longer than 4 bytes", bytes([0x32, 0x80, 0x80, 0x80, 0x80, 0x01])),
    ("a topic longer than the packet", frame(0x32, struct.pack("!H", 500) + b"ab")),
    ("a property block longer than the packet", frame(0x32, struct.pack("!H", 1) + b"t" + b"\x00\x01" +
                                                      varint(50) + b"\x26")),
    ("a property paho refuses", frame(0x32, struct.pack("!H", 1) + b"t" + b"\x00\x01" + varint(2) + b"\x7f\x00")),
    ("a body too short for its packet id", frame(0x32, struct.pack("!H", 1) + b"t")),
])
def test_what_it_does_not_read_is_left_to_paho_with_everything_after_it(name: str, packet: bytes) -> None:
    first, _ends = stream()
    msgs, used = take_publishes(first + packet + first, True)
    assert len(msgs) == 3 and used == len(first), name


class SpyReads:
    """Counts the PUBLISH packets `BufferedSocket.take_publishes` hands over (the fast path was taken)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken = 0
        original = BufferedSocket.take_publishes

        def take(sock: BufferedSocket, v5: bool, limit: int = 1 << 30) -> list[RawPublish]:
            msgs = original(sock, v5, limit)
            self.taken += len(msgs)
            return msgs

        monkeypatch.setattr(BufferedSocket, "take_publishes", take)


@pytest.mark.e2e
def test_a_burst_through_a_real_broker_arrives_whole_and_in_order_with_its_properties(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of messages published without waiting (so many share one read), of every size around the read
    chunk, some with user properties and a content type, some QoS 0: each arrives once, in order, as published,
    most of them through the fast path; a sudden stop mid-stream is no loss once acknowledged."""
    spy = SpyReads(monkeypatch)
    sizes = [0, 5, 300, 16_384, 300_000] + [400] * 595
    sent: list[tuple[bytes, dict[str, str], int]] = []
    with MosquittoBroker() as broker:
        with subscribed(broker, "central-burst") as (session, collector):
            with connected(broker.url, name="edge-burst") as edge:
                infos: list[Any] = []
                for i, size in enumerate(sizes):
                    body = bytes([i % 256]) * size
                    user = [("event_id", f"e{i}")] if i % 3 == 0 else []
                    qos = 0 if i % 7 == 0 else 1
                    props = props_of(user, "application/json" if i % 5 == 0 else None)
                    infos.append(edge.publish(TOPIC, body, qos=qos, properties=props))
                    sent.append((body, flatten_properties(props), qos))
                assert wait_until(lambda: all(info.is_published() for info in infos), 30)
            assert collector.wait(len(sizes))
            got = [(m.payload, m.properties, m.qos) for m in collector.msgs]
            for qos in (0, 1):  # in order within a QoS (the publisher holds QoS 1 beyond its in-flight window)
                assert [g for g in got if g[2] == qos] == [s for s in sent if s[2] == qos]
            assert all(m.topic == TOPIC for m in collector.msgs)
            assert len({m.mid for m in collector.msgs if m.qos == 1}) == sum(1 for s in sent if s[2] == 1)
            assert spy.taken > len(sizes) // 2
            session.ack_many(collector.msgs)
            time.sleep(0.5)
        with subscribed(broker, "central-burst") as (_session, again):
            time.sleep(0.5)
            assert again.msgs == []  # all acknowledged: nothing redelivered


class SlowWorker:
    """A `SessionHandler` that takes messages as fast as they come and handles (acknowledges) `per_turn` of them
    every `turn_s`; notes the most it ever held unhandled."""

    def __init__(self, session: MqttSession, per_turn: int, turn_s: float) -> None:
        self.session, self.per_turn, self.turn_s = session, per_turn, turn_s
        self.msgs: list[Inbound] = []
        self.handled = 0
        self.most_held = 0
        self.lock = threading.Lock()

    def held(self) -> int:
        with self.lock:
            return len(self.msgs) - self.handled

    def on_connected(self) -> None: ...

    def on_subscribed(self, refused: list[str]) -> None: ...

    def on_disconnected(self) -> None: ...

    def on_ack(self, mid: int, reason_code: int) -> None: ...

    def on_message(self, msg: Inbound) -> None:
        with self.lock:
            self.msgs.append(msg)
            self.most_held = max(self.most_held, len(self.msgs) - self.handled)

    def handle_until(self, total: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.handled < total and time.monotonic() < deadline:
            time.sleep(self.turn_s)
            with self.lock:
                batch = self.msgs[self.handled:self.handled + self.per_turn]
                self.handled += len(batch)
            self.session.ack_many(batch)


@pytest.mark.e2e
@pytest.mark.parametrize("room_for", [None, 40])
def test_a_full_caller_leaves_the_backlog_in_the_broker(room_for: int | None) -> None:
    """Mosquitto 2.0.11 sends a further Receive Maximum of messages for every PUBACK, so a backlog floods a slow
    reader whatever its Receive Maximum (`room_for` None: the session takes everything). With `room`, the session
    holds at most that many unhandled messages, and every message still arrives, in order, once."""
    total = 600
    with MosquittoBroker() as broker:
        holder: list[SlowWorker] = []
        room = (lambda: room_for - holder[0].held()) if room_for is not None else None
        session = MqttSession(BrokerURL.parse(broker.url), "central-room", receive_maximum=10, room=room)
        worker = SlowWorker(session, per_turn=20, turn_s=0.02)
        holder.append(worker)
        session.connect(worker)
        try:
            assert wait_until(lambda: session.connected, 10)
            session.subscribe([TOPIC])
            time.sleep(0.3)
            with connected(broker.url, name="edge-room") as edge:
                infos = [edge.publish(TOPIC, b"%05d" % i, qos=1) for i in range(total)]
                assert wait_until(lambda: all(info.is_published() for info in infos), 30)
            worker.handle_until(total)
            assert [m.payload for m in worker.msgs] == [b"%05d" % i for i in range(total)]
            if room_for is None:
                assert worker.most_held > 4 * 40  # the flood this guards against
            else:
                assert worker.most_held <= room_for
        finally:
            session.stop()


def test_the_inbox_counts_the_bytes_it_holds() -> None:
    inbox = Inbox()
    inbox.put(Inbound(TOPIC, b"x" * 100))
    inbox.put(Inbound(TOPIC, b"y" * 50))
    assert (inbox.qsize(), inbox.bytes) == (2, 150)
    assert inbox.get(timeout=1).payload == b"x" * 100
    assert inbox.bytes == 50
    inbox.get_nowait()
    assert (inbox.qsize(), inbox.bytes) == (0, 0)


def test_central_takes_no_more_once_its_inbox_holds_its_bytes_or_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    svc = CentralService("mqtt://127.0.0.1:1", "sqlite://", batch_size=10)
    assert svc._inbox_room() == INBOX_BATCHES * 10
    for _ in range(INBOX_BATCHES * 10 - 1):
        svc._inbox.put(Inbound(TOPIC, b"{}"))
    assert svc._inbox_room() == 1
    monkeypatch.setattr(service_module, "INBOX_MAX_BYTES", 100)
    svc._inbox.put(Inbound(TOPIC, b"x" * 50))
    assert svc._inbox_room() == 0  # bytes: 78 + 50 >= 100
