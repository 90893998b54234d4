"""An in-memory `Transport` for unit tests, next to the real one (`gridwatch.wire.publisher.MqttTransport`).

The test decides when messages are acknowledged and when the connection drops, including the awkward moments
a real broker produces now and then: a drop inside publish() (`disconnect_during_publish`), message ids that
start again on a new connection (`restart_mids`) or wrap like paho's (`MID_WRAP`), a PUBACK that arrives late
(`ack`), a refusal with an MQTT 5 reason code (`ack(mid, 0x87)`), and anything else at the moment publish()
has the message id but has not returned it yet (`during_publish`). With `auto_receipt` it also plays central:
each acknowledged incident or evidence message is answered on the gateway's receipt topic, if subscribed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from gridwatch.wire.outbox import key_of
from gridwatch.wire.publisher import MessageCallback, TransportHandler

MID_WRAP = 65_535  # paho's message ids run 1..65535, then start at 1 again


@dataclass
class FakeTransport:
    """Records publishes; with `auto_ack` every publish is acknowledged inside publish(), as a fast broker might.

    - `disconnect_during_publish`: the next N publish() calls send the message, then the connection drops
      (the handler's `on_disconnected` runs) before publish() returns the message id.
    - `restart_mids`: message ids start from 1 again on every new connection.
    - `during_publish(mid)`: called inside publish() after the message left, before its id is returned.
    - `auto_receipt`: after the PUBACK of an incident/evidence message, deliver central's receipt for it on
      `{prefix}/{site}/{gateway}/receipt` (when subscribed), as a central that committed it at once would.
    """

    connected: bool = True
    auto_ack: bool = True
    disconnect_during_publish: int = 0
    restart_mids: bool = False
    during_publish: Callable[[int], None] | None = None
    auto_receipt: bool = False
    sent: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    mids: list[int] = field(default_factory=list)
    unacked: list[int] = field(default_factory=list)
    subscriptions: dict[str, MessageCallback] = field(default_factory=dict)
    _handler: TransportHandler | None = None
    _mid: int = 0

    def subscribe(self, topic: str, on_message: MessageCallback) -> None:
        self.subscriptions[topic] = on_message

    def deliver(self, topic: str, payload: bytes) -> None:
        """A message from the broker on a subscribed topic (dropped, like the real one does, otherwise)."""
        callback = self.subscriptions.get(topic)
        if callback is not None:
            callback(topic, payload)

    def start(self, handler: TransportHandler) -> None:
        self._handler = handler
        if self.connected:
            handler.on_connected()

    def publish(self, topic: str, payload: bytes, properties: dict[str, str], *, retain: bool = False) -> int | None:
        if not self.connected:
            return None
        self._mid = self._mid % MID_WRAP + 1
        self.sent.append((topic, payload, properties))
        self.mids.append(self._mid)
        if self.during_publish is not None:
            self.during_publish(self._mid)
        if self.disconnect_during_publish > 0:
            self.disconnect_during_publish -= 1
            self.set_connected(False)  # the message may or may not have reached the broker: no PUBACK will come
        elif self.auto_ack and self._handler:
            self._handler.on_ack(self._mid, 0)
            if self.auto_receipt:
                self._receipt(topic, payload, properties)
        else:
            self.unacked.append(self._mid)
        return self._mid

    def _receipt(self, topic: str, payload: bytes, properties: dict[str, str]) -> None:
        head, _, kind = topic.rpartition("/")
        if kind not in ("incident", "evidence"):
            return
        event_id = properties.get("event_id") or key_of(kind, payload, properties)
        if event_id:
            body = json.dumps({"v": 1, kind: [event_id]}).encode()
            self.deliver(head.rsplit("/", 1)[0] + "/receipt", body)

    def set_connected(self, up: bool) -> None:
        self.connected = up
        if up and self.restart_mids:
            self._mid = 0
        if self._handler:
            (self._handler.on_connected if up else self._handler.on_disconnected)()

    def ack(self, mid: int, reason_code: int = 0) -> None:
        """Deliver one PUBACK now, whichever connection it belongs to (reason code >= 0x80: refused)."""
        if self._handler:
            self._handler.on_ack(mid, reason_code)

    def ack_all(self, reason_code: int = 0) -> None:
        mids, self.unacked = self.unacked, []
        for mid in mids:
            self.ack(mid, reason_code)

    def stop(self) -> None:
        self.connected = False
