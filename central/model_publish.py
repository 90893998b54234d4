"""`gridwatch models publish`: send a signed model to gateways over their control topics and wait for their word.

For each gateway: a new transfer id, a statement (site, gateway, transfer id, issue time, manifest and model
sha256, size) signed with the publisher's Ed25519 key, the offer, then the model in chunks
(`gridwatch.wire.model_update`), every message at QoS 1 with at most `MAX_INFLIGHT` unacknowledged; a PUBACK that
refuses a message (MQTT 5 reason code, e.g. 135 not authorized by the broker's ACL) stops the publish with that
reason. Then the gateway's retained status is watched until its `model_update` names this transfer: `installed`
(or `unchanged`) with the new sha256 running is a success; `refused` / `rolled_back` carry the gateway's reason;
silence past `timeout_s` is a failure too.

Staged (`--staged`): the first gateway gets the model and must report it running before the others get it; if it
does not, the others are not touched. `ControlChannel` is the MQTT side (`MqttControlChannel`); unit tests pass a
fake gateway instead.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gridwatch.central.errors import CentralError
from gridwatch.wire.model_signing import sign
from gridwatch.wire.model_update import (
    DEFAULT_CHUNK_BYTES,
    ModelBundle,
    new_transfer_id,
    offer_for,
    statement_for,
    transfer_messages,
)
from gridwatch.wire.mqtt import BrokerURL, make_client
from gridwatch.wire.mqtt import Protocol as MqttProtocol
from gridwatch.wire.topics import control_topic, status_topic

log = logging.getLogger("gridwatch.central")

MAX_INFLIGHT = 16
MAX_STATUS_BYTES = 256 * 1024
SUCCESS = ("installed", "unchanged")


class PublishError(CentralError):
    """The broker refused or dropped the transfer; the message says which gateway and why."""


class ControlChannel(Protocol):
    def send(self, topic: str, payloads: Iterable[bytes]) -> None:
        """Publish each payload at QoS 1 and return once all are acknowledged; raise PublishError otherwise."""
        ...

    def status(self, gateway: str) -> dict[str, Any] | None:
        """The gateway's latest status (retained or live), None when none was seen."""
        ...

    def wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Block until `predicate()` holds (re-checked whenever a status arrives) or the timeout passes."""
        ...


@dataclass(frozen=True)
class GatewayResult:
    gateway: str
    ok: bool
    result: str  # installed, unchanged, refused, rolled_back, timeout, not_sent, error
    reason: str
    seconds: float = 0.0


def publish_model(bundle: ModelBundle, site: str, gateways: Sequence[str], key: Ed25519PrivateKey,
                  channel: ControlChannel, *, prefix: str, staged: bool = False, timeout_s: float = 300.0,
                  chunk_size: int = DEFAULT_CHUNK_BYTES, clock: Callable[[], float] = time.time) -> list[GatewayResult]:
    """Publish `bundle` to every gateway of `site` (the first alone, first, when `staged`); one result each."""
    if not gateways:
        raise CentralError("no gateways given; pass --gateways g1,g2")
    if staged and len(gateways) > 1:
        first = _publish_and_wait([gateways[0]], bundle, site, key, channel, prefix, timeout_s, chunk_size, clock)
        if not first[0].ok:
            rest = [GatewayResult(g, False, "not_sent", f"staged rollout stopped: {gateways[0]} did not report "
                                  f"the new model ({first[0].result}: {first[0].reason})") for g in gateways[1:]]
            return first + rest
        return first + _publish_and_wait(gateways[1:], bundle, site, key, channel, prefix, timeout_s, chunk_size,
                                         clock)
    return _publish_and_wait(gateways, bundle, site, key, channel, prefix, timeout_s, chunk_size, clock)


def _publish_and_wait(gateways: Sequence[str], bundle: ModelBundle, site: str, key: Ed25519PrivateKey,
                      channel: ControlChannel, prefix: str, timeout_s: float, chunk_size: int,
                      clock: Callable[[], float]) -> list[GatewayResult]:
    sent: dict[str, tuple[str, float]] = {}
    results: dict[str, GatewayResult] = {}
    for gw in gateways:
        t0 = time.monotonic()
        transfer_id = new_transfer_id()
        statement = statement_for(bundle, site, gw, transfer_id, int(clock() * 1000))
        signature, key_id = sign(key, statement.canonical())
        offer = offer_for(bundle, statement, signature, key_id, chunk_size)
        try:
            channel.send(control_topic(prefix, site, gw), transfer_messages(bundle, offer))
        except PublishError as exc:
            results[gw] = GatewayResult(gw, False, "error", str(exc), time.monotonic() - t0)
            continue
        log.info("model %s %s sent to %s/%s (transfer %s, %d chunks)", bundle.name, bundle.version, site, gw,
                 transfer_id, offer.chunk_count)
        sent[gw] = (transfer_id, t0)
    deadline = time.monotonic() + timeout_s
    for gw, (transfer_id, t0) in sent.items():
        channel.wait(lambda gw=gw, tid=transfer_id: _outcome(channel.status(gw), tid) is not None,  # type: ignore[misc]
                     max(0.0, deadline - time.monotonic()))
        results[gw] = _result(gw, channel.status(gw), transfer_id, bundle, time.monotonic() - t0, timeout_s)
    return [results[gw] for gw in gateways]


def _outcome(status: dict[str, Any] | None, transfer_id: str) -> dict[str, Any] | None:
    update = (status or {}).get("model_update")
    if isinstance(update, dict) and update.get("transfer_id") == transfer_id:
        return update
    return None


def _result(gw: str, status: dict[str, Any] | None, transfer_id: str, bundle: ModelBundle, seconds: float,
            timeout_s: float) -> GatewayResult:
    update = _outcome(status, transfer_id)
    if update is None:
        state = (status or {}).get("state", "no status seen")
        return GatewayResult(gw, False, "timeout", f"no answer within {timeout_s:.0f} s (gateway state: {state})",
                             seconds)
    result, reason = str(update.get("result")), str(update.get("reason"))
    running = ((status or {}).get("model") or {}).get("sha256")
    ok = result in SUCCESS and running == bundle.sha256
    if result in SUCCESS and not ok:
        reason = f"reported {result} but runs sha256 {running}"
    return GatewayResult(gw, ok, result, reason, seconds)


class MqttControlChannel:
    """Central's side of the control topics over paho: publishes at QoS 1, watches the gateways' status."""

    def __init__(self, broker: BrokerURL, prefix: str, site: str, gateways: Sequence[str], *,
                 protocol: MqttProtocol = "5", ca_file: str | None = None, client_id: str | None = None) -> None:
        self.prefix, self.site = prefix, site
        self._topics = {status_topic(prefix, site, gw): gw for gw in gateways}
        self._status: dict[str, dict[str, Any]] = {}
        self._acks: dict[int, str | None] = {}  # mid -> None (accepted) or the refusal reason
        self._cond = threading.Condition()
        self._connected = False
        self._subscribed = False
        self.client = make_client(client_id or f"gridwatch-publish-{new_transfer_id()[:8]}", broker, protocol,
                                  ca_file=ca_file)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.broker = broker

    def open(self, timeout_s: float = 15.0) -> MqttControlChannel:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        if not self.wait(lambda: self._subscribed, timeout_s):
            self.close()
            raise PublishError(f"could not connect and subscribe to {self.broker} within {timeout_s:.0f} s")
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> MqttControlChannel:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ControlChannel ---------------------------------------------------------------------------------------------
    def send(self, topic: str, payloads: Iterable[bytes]) -> None:
        mids: list[int] = []
        try:
            self._send(topic, payloads, mids)
        finally:
            with self._cond:  # paho reuses message ids: forget these acks before the next send
                for mid in mids:
                    self._acks.pop(mid, None)

    def _send(self, topic: str, payloads: Iterable[bytes], mids: list[int]) -> None:
        for payload in payloads:
            with self._cond:
                if not self._cond.wait_for(lambda: self._connected and self._pending(mids) < MAX_INFLIGHT, 60):
                    raise PublishError(f"{topic}: broker {self.broker} not acknowledging (connection lost?)")
            info = self.client.publish(topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise PublishError(f"{topic}: publish failed ({mqtt.error_string(info.rc)})")
            mids.append(int(info.mid))
            self._raise_refused(topic, mids)
        with self._cond:
            if not self._cond.wait_for(lambda: self._pending(mids) == 0, 60):
                raise PublishError(f"{topic}: {self._pending(mids)} message(s) not acknowledged by {self.broker}")
        self._raise_refused(topic, mids)

    def status(self, gateway: str) -> dict[str, Any] | None:
        with self._cond:
            return self._status.get(gateway)

    def wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout_s)

    # paho callbacks ---------------------------------------------------------------------------------------------
    def _pending(self, mids: list[int]) -> int:
        return sum(1 for m in mids if m not in self._acks)

    def _raise_refused(self, topic: str, mids: list[int]) -> None:
        with self._cond:
            refused = [self._acks[m] for m in mids if self._acks.get(m)]
        if refused:
            raise PublishError(f"{topic}: the broker refused the model update ({refused[0]}); only the central "
                               "account may publish on control topics (deploy/mosquitto/acl)")

    def _on_connect(self, client: mqtt.Client, _ud: object, _flags: object, rc: Any, _props: object) -> None:
        if getattr(rc, "is_failure", False):
            log.error("broker %s refused the connection: %s", self.broker, rc)
            return
        with self._cond:
            self._connected = True
            self._cond.notify_all()
        client.subscribe([(t, 1) for t in self._topics])

    def _on_disconnect(self, _c: mqtt.Client, _ud: object, _flags: object, _rc: object, _props: object) -> None:
        with self._cond:
            self._connected = False
            self._cond.notify_all()

    def _on_subscribe(self, _c: mqtt.Client, _ud: object, _mid: int, _rcs: object, _props: object) -> None:
        with self._cond:
            self._subscribed = True
            self._cond.notify_all()

    def _on_publish(self, _c: mqtt.Client, _ud: object, mid: int, rc: Any, _props: object) -> None:
        with self._cond:
            self._acks[mid] = str(rc) if getattr(rc, "is_failure", False) else None
            self._cond.notify_all()

    def _on_message(self, _c: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        gw = self._topics.get(msg.topic)
        if gw is None or len(msg.payload) > MAX_STATUS_BYTES:
            return
        try:
            status = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(status, dict) and status.get("gateway_id") == gw:
            with self._cond:
                self._status[gw] = status
                self._cond.notify_all()
