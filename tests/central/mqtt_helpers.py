"""A tiny paho publisher/listener for the central end-to-end tests."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridwatch.wire.mqtt import BrokerURL, Protocol, make_client
from tests.central.factories import JPEG_BYTES


@contextmanager
def connected(url: str, protocol: Protocol = "5", name: str = "test") -> Iterator[mqtt.Client]:
    """A connected, looping paho client that is disconnected and stopped on exit."""
    client = make_client(f"{name}-{uuid.uuid4().hex[:8]}", BrokerURL.parse(url), protocol)
    ready = threading.Event()
    client.on_connect = lambda *_a: ready.set()
    broker = BrokerURL.parse(url)
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    try:
        assert ready.wait(5), "test client did not connect"
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish(client: mqtt.Client, topic: str, payload: bytes, properties: Properties | None = None) -> None:
    """Publish at QoS 1 and wait for the PUBACK."""
    info = client.publish(topic, payload, qos=1, properties=properties)
    info.wait_for_publish(5)
    assert info.is_published(), f"publish to {topic} not acknowledged"


def evidence_properties(incident_id: str, event_id: str, data: bytes = JPEG_BYTES) -> Properties:
    """MQTT 5 properties of an evidence message."""
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "image/jpeg"
    props.UserProperty = [("incident_id", incident_id), ("event_id", event_id),
                          ("sha256", hashlib.sha256(data).hexdigest())]
    return props


class Listener:
    """Collects the payloads received on one topic filter."""

    def __init__(self, client: mqtt.Client, topic_filter: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        client.on_message = self._on_message
        done = threading.Event()
        client.on_subscribe = lambda *_a: done.set()
        client.subscribe(topic_filter, qos=1)
        assert done.wait(5), "listener not subscribed"

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.messages) >= n, timeout)


@contextmanager
def persistent(url: str, client_id: str, expiry_s: int = 3600) -> Iterator[mqtt.Client]:
    """An MQTT 5 client with a persistent session (QoS 1 messages are queued for it while it is away) that
    reconnects by itself; disconnected and stopped on exit."""
    broker = BrokerURL.parse(url)
    client = make_client(client_id, broker, "5", clean_start=False)
    ready = threading.Event()
    client.on_connect = lambda *_a: ready.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry_s
    client.connect(broker.host, broker.port, keepalive=30, clean_start=False, properties=props)
    client.loop_start()
    try:
        assert ready.wait(5), "test client did not connect"
        yield client
    finally:
        client.disconnect()
        client.loop_stop()
