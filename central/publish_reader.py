"""Central's inbound PUBLISH packets, parsed straight from the socket buffer (issue 8: ingest rate).

paho handles one packet per turn of its network loop: a `select`, three or four reads, a `MQTTMessage`, an MQTT 5
`Properties` object even when the packet has none, a debug-log format, the keep-alive bookkeeping. At
thousands of incident events a second that was about 0.1 ms per message on central's network thread, as much as
the batch worker's decoding and storing, and under one GIL the two take turns.

`take_publishes` parses every complete QoS 0 / QoS 1 PUBLISH packet at the head of the buffer
(`transport.BufferedSocket` keeps what one `recv` brought) in one pass. It stops at, and leaves to paho, anything
else: another packet type, QoS 2 (paho keeps state for it), a packet not yet complete, an empty topic (MQTT 5
topic aliases), a topic that is not UTF-8 or a malformed header or property block. So paho still sees every
packet it has state for, and a hostile packet meets paho's checks exactly as before.

Properties are decoded by paho's own `Properties.unpack`, only when a packet has any; the flat dict is what
`flatten_properties` made from paho's message before (content type and user properties).
"""

from __future__ import annotations

from dataclasses import dataclass

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PUBLISH = 0x30
_MAX_VARINT_BYTES = 4  # MQTT's variable byte integer: at most 4 bytes (2.2.3, 1.5.5)


@dataclass(frozen=True, slots=True)
class RawPublish:
    """One parsed PUBLISH: what `transport.Inbound` needs from it."""

    qos: int
    mid: int
    topic: str
    properties: dict[str, str]
    payload: bytes


def flatten_properties(props: Properties | None) -> dict[str, str]:
    """MQTT 5 content type and user properties as a flat dict (empty for MQTT 3.1.1)."""
    if props is None:
        return {}
    flat: dict[str, str] = {str(k): str(v) for k, v in getattr(props, "UserProperty", [])}
    content_type = getattr(props, "ContentType", None)
    if content_type:
        flat["content_type"] = str(content_type)
    return flat


def take_publishes(buf: bytes | bytearray, v5: bool, limit: int = 1 << 30) -> tuple[list[RawPublish], int]:
    """The complete QoS 0/1 PUBLISH packets at the head of `buf` (at most `limit`), and the bytes they took.

    Stops at the first packet it leaves to paho (see the module's doc); `buf[consumed:]` starts with it."""
    view = memoryview(buf)
    out: list[RawPublish] = []
    pos, end = 0, len(buf)
    while len(out) < limit and pos < end:
        parsed = _one(view, pos, end, v5)
        if parsed is None:
            break
        msg, pos = parsed
        out.append(msg)
    return out, pos


def _varint(view: memoryview, pos: int, end: int) -> tuple[int, int] | None:
    """(value, position after it), or None when incomplete or longer than MQTT allows."""
    value, shift = 0, 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= end:
            return None
        byte = view[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    return None


def _one(view: memoryview, pos: int, end: int, v5: bool) -> tuple[RawPublish, int] | None:
    """The packet at `pos` and the position after it, or None to leave it to paho."""
    header = view[pos]
    qos = (header >> 1) & 0x03
    if header & 0xF0 != PUBLISH or qos > 1:
        return None
    length = _varint(view, pos + 1, end)
    if length is None:
        return None
    remaining, body = length
    stop = body + remaining
    if stop > end or remaining < 2:
        return None
    topic_len = (view[body] << 8) | view[body + 1]
    at = body + 2 + topic_len
    if topic_len == 0 or at + (2 if qos else 0) > stop:
        return None
    try:
        topic = str(view[body + 2:at], "utf-8")
    except UnicodeDecodeError:
        return None
    mid = 0
    if qos:
        mid, at = (view[at] << 8) | view[at + 1], at + 2
    props: dict[str, str] = {}
    if v5:
        decoded = _properties(view, at, stop)
        if decoded is None:
            return None
        props, at = decoded
    return RawPublish(qos, mid, topic, props, bytes(view[at:stop])), stop


def _properties(view: memoryview, pos: int, stop: int) -> tuple[dict[str, str], int] | None:
    """An MQTT 5 property block at `pos`, flattened, and the position after it; None when malformed."""
    length = _varint(view, pos, stop)
    if length is None:
        return None
    size, start = length
    if start + size > stop:
        return None
    if size == 0:
        return {}, start
    try:
        props = Properties(PacketTypes.PUBLISH)
        _, used = props.unpack(bytes(view[pos:start + size]))
    except Exception:  # paho's own read of the same bytes raises it again, in paho's hands
        return None
    if used != start + size - pos:
        return None
    return flatten_properties(props), start + size
