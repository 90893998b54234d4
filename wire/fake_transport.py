"""An in-memory `Transport` for unit tests, next to the real one (`gridwatch.wire.publisher.MqttTransport`).

The test decides when messages are acknowledged and when the connection drops, including the awkward moments
a real broker produces now and then: a drop inside publish() (`disconnect_during_publish`), message ids that
start again on a new connection (`restart_mids`), a PUBACK that arrives late (`ack`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gridwatch.wire.publisher import MessageCallback, TransportHandler


@dataclass
class FakeTransport:
    """Records publishes; with `auto_ack` every publish is acknowledged inside publish(), as a fast broker might.

    - `disconnect_during_publish`: the next N publish() calls send the message, then the connection drops
      (the handler's `on_disconnected` runs) before publish() returns the message id.
    - `restart_mids`: message ids start from 1 again on every new connection.
    """

    connected: bool = True
    auto_ack: bool = True
    disconnect_during_publish: int = 0
    restart_mids: bool = False
    sent: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
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
        self._mid += 1
        self.sent.append((topic, payload, properties))
        if self.disconnect_during_publish > 0:
            self.disconnect_during_publish -= 1
            self.set_connected(False)  # the message may or may not have reached the broker: no PUBACK will come
        elif self.auto_ack and self._handler:
            self._handler.on_ack(self._mid, True)
        else:
            self.unacked.append(self._mid)
        return self._mid

    def set_connected(self, up: bool) -> None:
        self.connected = up
        if up and self.restart_mids:
            self._mid = 0
        if self._handler:
            (self._handler.on_connected if up else self._handler.on_disconnected)()

    def ack(self, mid: int, ok: bool = True) -> None:
        """Deliver one PUBACK now, whichever connection it belongs to."""
        if self._handler:
            self._handler.on_ack(mid, ok)

    def ack_all(self, ok: bool = True) -> None:
        mids, self.unacked = self.unacked, []
        for mid in mids:
            self.ack(mid, ok)

    def stop(self) -> None:
        self.connected = False
