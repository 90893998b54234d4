"""The shipped broker config and ACL, enforced by the real Mosquitto binary.

The broker runs `deploy/mosquitto/mosquitto.conf` itself, with only its paths and ports rewritten for a temporary
folder (every rewrite is asserted, so a renamed path in the shipped file fails here instead of silently testing
something else), the shipped `deploy/mosquitto/acl` as is, a password file made by `add-user.sh` (mosquitto_passwd)
and certificates made by `make-certs.sh`. A missing mosquitto or mosquitto_passwd FAILS these tests.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from gridwatch.app.broker import BrokerError, find_mosquitto, free_port
from gridwatch.wire.mqtt import BrokerURL, make_client

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MOSQ = REPO / "deploy" / "mosquitto"
ACL = MOSQ / "acl"
PASSWORD = "correct-horse-battery-staple"
USERS = ("gw-pole-017", "gw-pole-018", "gridwatch-central", "cleaner-42")
PREFIX = "gridwatch/v1"
SITE = "chaoyang-jianwai"
NOT_AUTHORIZED = 135


@dataclass(frozen=True)
class Broker:
    port: int
    tls_port: int
    ca: Path
    log: Path


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env, check=False)
    assert proc.returncode == 0, f"{cmd[0]} failed ({proc.returncode}): {proc.stderr}{proc.stdout}"


def _rewrite(text: str, old: str, new: str, *, line: bool = False) -> str:
    """Replace `old` (a whole line when `line`) and insist it was there: the shipped file is what is tested."""
    if line:
        lines = text.splitlines()
        assert lines.count(old) == 1, f"expected exactly one line {old!r} in deploy/mosquitto/mosquitto.conf"
        return "\n".join(new if ln == old else ln for ln in lines) + "\n"
    assert old in text, f"expected {old!r} in deploy/mosquitto/mosquitto.conf"
    return text.replace(old, new)


def derived_config(d: Path, port: int, tls_port: int) -> str:
    text = (MOSQ / "mosquitto.conf").read_text()
    text = _rewrite(text, "listener 8883", f"listener {tls_port} 127.0.0.1", line=True)
    text = _rewrite(text, "listener 1883 127.0.0.1", f"listener {port} 127.0.0.1", line=True)
    text = _rewrite(text, "/etc/mosquitto/certs/", f"{d}/certs/")
    text = _rewrite(text, "password_file /etc/mosquitto/passwd", f"password_file {d}/passwd")
    text = _rewrite(text, "acl_file /etc/mosquitto/acl", f"acl_file {ACL}")
    text = _rewrite(text, "persistence_location /var/lib/mosquitto/", f"persistence_location {d}/data/")
    settings = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert not [ln for ln in settings if "/etc/mosquitto" in ln or "/var/lib" in ln], "a production path is left"
    # Run as whoever runs the tests: as root Mosquitto would otherwise drop to user `mosquitto`, which cannot
    # read pytest's private tmp folder. (The deploy README covers file ownership on a real broker host.)
    return text + f"user {getpass.getuser()}\n"


def _wait_listening(proc: subprocess.Popen[bytes], ports: tuple[int, ...], log: Path, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mosquitto exited with {proc.returncode} on the shipped config:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.2):
                pending.pop(0)
        except OSError:
            time.sleep(0.05)
    if pending:
        pytest.fail(f"mosquitto did not listen on {pending}:\n{log.read_text()}")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    try:
        binary = find_mosquitto()
    except BrokerError as exc:
        pytest.fail(str(exc))
    if shutil.which("mosquitto_passwd") is None:
        pytest.fail("mosquitto_passwd not found; it ships with Debian's mosquitto package (apt-get install mosquitto)")
    d = tmp_path_factory.mktemp("broker")
    (d / "data").mkdir()
    _run(["bash", str(MOSQ / "make-certs.sh"), "-o", str(d / "certs"), "localhost", "127.0.0.1"])
    for user in USERS:
        env = {**os.environ, "MQTT_PASSWORD": PASSWORD}
        _run(["bash", str(MOSQ / "add-user.sh"), str(d / "passwd"), user], env=env)
    port, tls_port = free_port(), free_port()
    conf = d / "mosquitto.conf"
    conf.write_text(derived_config(d, port, tls_port))
    log_path = d / "mosquitto.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
    try:
        _wait_listening(proc, (port, tls_port), log_path)
        yield Broker(port, tls_port, d / "certs" / "ca.crt", log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class Session:
    """A paho MQTT 5 client: connect result, PUBACK reason codes, received messages."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.connack: ReasonCode | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, int] = {}
        self._cond = threading.Condition()
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        self._subscribed: list[list[ReasonCode]] = []

    def _notify(self, fn: Callable[[], None]) -> None:
        with self._cond:
            fn()
            self._cond.notify_all()

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, rc: ReasonCode, _props: Any) -> None:
        def done() -> None:
            self.connack = rc
        self._notify(done)
        if rc.is_failure:
            client.disconnect()  # no reconnect loop against a broker that refuses us

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        self._notify(lambda: self.messages.append((msg.topic, bytes(msg.payload))))

    def _on_publish(self, _c: mqtt.Client, _ud: Any, mid: int, rc: ReasonCode, _props: Any) -> None:
        self._notify(lambda: self.pubacks.__setitem__(mid, rc.value))

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, _mid: int, rcs: list[ReasonCode], _props: Any) -> None:
        self._notify(lambda: self._subscribed.append(rcs))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def subscribe(self, *filters: str) -> None:
        n = len(self._subscribed)
        self.client.subscribe([(f, 1) for f in filters])
        assert self.wait_for(lambda: len(self._subscribed) > n), f"no SUBACK for {filters}"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """QoS 1 publish; returns the PUBACK reason code (0 = accepted, 16 = no subscribers, 135 = not authorized)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        assert self.wait_for(lambda: info.mid in self.pubacks), f"no PUBACK for {topic}"
        return self.pubacks[info.mid]

    def received(self, topic: str, payload: bytes) -> bool:
        return (topic, payload) in self.messages


def _client(name: str) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}",
                       protocol=mqtt.MQTTv5)


def _open(client: mqtt.Client, port: int, host: str = "127.0.0.1") -> Session:
    session = Session(client)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    session.wait_for(lambda: session.connack is not None, 5)
    return session


def _close(session: Session) -> None:
    client = session.client
    client.disconnect()
    client.loop_stop()
    # Break the client <-> session reference cycle, so paho's __del__ closes its wake-up socket pair when the client
    # goes (a cycle would leave the sockets to the garbage collector: ResourceWarning, an error under pytest here).
    client.on_connect = client.on_message = client.on_publish = client.on_subscribe = None


@pytest.fixture
def login(broker: Broker) -> Iterator[Callable[..., Session]]:
    """login(user, password=PASSWORD) -> a Session on the plain listener, closed after the test."""
    opened: list[Session] = []

    def _login(user: str | None, password: str = PASSWORD) -> Session:
        client = _client(user or "anonymous")
        if user is not None:
            client.username_pw_set(user, password)
        session = _open(client, broker.port)
        opened.append(session)
        return session

    yield _login
    for session in opened:
        _close(session)


def connected(session: Session) -> Session:
    assert session.connack is not None, "no CONNACK"
    assert not session.connack.is_failure, f"connect refused: {session.connack}"
    return session


def test_gateway_incident_reaches_central_through_shared_subscription(login: Callable[..., Session]) -> None:
    central = connected(login("gridwatch-central"))
    central.subscribe(f"$share/central/{PREFIX}/+/+/+/incident", f"$share/central/{PREFIX}/+/+/+/evidence")
    gateway = connected(login("gw-pole-017"))
    topic = f"{PREFIX}/{SITE}/gw-pole-017/kerb-cam/incident"
    evidence = f"{PREFIX}/{SITE}/gw-pole-017/kerb-cam/evidence"
    assert gateway.publish(topic, b'{"event_id": "e1"}') == 0
    assert gateway.publish(evidence, b"\xff\xd8jpeg") == 0
    assert central.wait_for(lambda: central.received(topic, b'{"event_id": "e1"}')), central.messages
    assert central.wait_for(lambda: central.received(evidence, b"\xff\xd8jpeg"))


@pytest.mark.parametrize("user", ["gw-pole-018", "cleaner-42"])
def test_only_the_gateway_itself_writes_its_incidents_and_evidence(login: Callable[..., Session], user: str) -> None:
    # Issue 8: before, every account could publish any camera's incidents (the topic had no gateway level).
    central = connected(login("gridwatch-central"))
    central.subscribe(f"{PREFIX}/+/+/+/incident", f"{PREFIX}/+/+/+/evidence")
    other = connected(login(user))
    for kind in ("incident", "evidence"):
        assert other.publish(f"{PREFIX}/{SITE}/gw-pole-017/kerb-cam/{kind}", b"forged") == NOT_AUTHORIZED
        assert other.publish(f"{PREFIX}/{SITE}/kerb-cam/{kind}", b"old topic shape") == NOT_AUTHORIZED
    own = connected(login("gw-pole-017"))
    fence = f"{PREFIX}/{SITE}/gw-pole-017/kerb-cam/incident"
    assert own.publish(fence, b"real") == 0
    assert central.wait_for(lambda: central.received(fence, b"real"))
    assert [p for _t, p in central.messages] == [b"real"]


def test_a_cleaner_writes_only_its_own_acknowledgements(login: Callable[..., Session]) -> None:
    central = connected(login("gridwatch-central"))
    central.subscribe(f"{PREFIX}/ack/+")
    cleaner, gateway = connected(login("cleaner-42")), connected(login("gw-pole-017"))
    assert cleaner.publish(f"{PREFIX}/ack/cleaner-7", b"forged ack") == NOT_AUTHORIZED
    assert gateway.publish(f"{PREFIX}/ack/cleaner-42", b"forged ack") == NOT_AUTHORIZED
    own = f"{PREFIX}/ack/cleaner-42"
    assert cleaner.publish(own, b"ack 1") == 0
    assert central.wait_for(lambda: central.received(own, b"ack 1"))
    assert central.messages == [(own, b"ack 1")]


def test_gateway_writes_only_its_own_status(login: Callable[..., Session]) -> None:
    central = connected(login("gridwatch-central"))
    central.subscribe(f"{PREFIX}/+/+/status")
    gw17, gw18 = connected(login("gw-pole-017")), connected(login("gw-pole-018"))
    forged = f"{PREFIX}/{SITE}/gw-pole-018/status"
    assert gw17.publish(forged, b'{"state": "forged"}') == NOT_AUTHORIZED
    # The fence: gw-pole-018's own status is accepted and delivered; the forged one, refused before it, never is.
    assert gw18.publish(forged, b'{"state": "online"}') == 0
    assert central.wait_for(lambda: central.received(forged, b'{"state": "online"}'))
    assert not central.received(forged, b'{"state": "forged"}')


def test_only_central_dispatches_to_a_cleaner(login: Callable[..., Session]) -> None:
    cleaner = connected(login("cleaner-42"))
    cleaner.subscribe(f"{PREFIX}/dispatch/cleaner-42", f"{PREFIX}/dispatch/cleaner-7")
    gateway, central = connected(login("gw-pole-017")), connected(login("gridwatch-central"))
    own = f"{PREFIX}/dispatch/cleaner-42"
    assert gateway.publish(own, b"forged case") == NOT_AUTHORIZED
    assert central.publish(f"{PREFIX}/dispatch/cleaner-7", b"someone else's case") == 0
    assert central.publish(own, b"case 1") == 0
    assert cleaner.wait_for(lambda: cleaner.received(own, b"case 1"))
    assert cleaner.messages == [(own, b"case 1")], "a cleaner must see only its own dispatch topic"


def test_gateway_reads_only_its_own_control_topic(login: Callable[..., Session]) -> None:
    gateway = connected(login("gw-pole-017"))
    gateway.subscribe(f"{PREFIX}/+/+/control", f"{PREFIX}/+/+/+/incident")
    central = connected(login("gridwatch-central"))
    other = connected(login("gw-pole-018"))
    assert other.publish(f"{PREFIX}/{SITE}/gw-pole-018/cam-9/incident", b"not for gateways") == 0
    assert central.publish(f"{PREFIX}/{SITE}/gw-pole-018/control", b"not yours") == 0
    own = f"{PREFIX}/{SITE}/gw-pole-017/control"
    assert central.publish(own, b"reload") == 0
    assert gateway.wait_for(lambda: gateway.received(own, b"reload"))
    assert gateway.messages == [(own, b"reload")]


def test_only_central_writes_receipts_and_a_gateway_reads_only_its_own(login: Callable[..., Session]) -> None:
    """A receipt makes a gateway delete outbox rows: a forged one could make it drop events. Only central writes
    them (MQTT 5: PUBACK 135 for anyone else), and a gateway subscribed to every receipt topic gets only its own."""
    gateway = connected(login("gw-pole-017"))
    gateway.subscribe(f"{PREFIX}/+/+/receipt")
    own, other_gw = f"{PREFIX}/{SITE}/gw-pole-017/receipt", f"{PREFIX}/{SITE}/gw-pole-018/receipt"
    forger, cleaner, central = connected(login("gw-pole-018")), connected(login("cleaner-42")), \
        connected(login("gridwatch-central"))
    assert forger.publish(own, b"forged receipt") == NOT_AUTHORIZED
    assert forger.publish(other_gw, b"self-issued receipt") == NOT_AUTHORIZED
    assert gateway.publish(own, b"self-issued receipt") == NOT_AUTHORIZED
    assert cleaner.publish(own, b"forged receipt") == NOT_AUTHORIZED
    assert central.publish(other_gw, b"not yours") == 0
    assert central.publish(own, b"receipt 1") == 0
    assert gateway.wait_for(lambda: gateway.received(own, b"receipt 1"))
    assert gateway.messages == [(own, b"receipt 1")]


@pytest.mark.parametrize(("user", "password"), [(None, ""), ("gw-pole-017", "wrong-password-123"),
                                                ("nobody", PASSWORD)])
def test_anonymous_wrong_password_and_unknown_user_are_refused(
    login: Callable[..., Session], user: str | None, password: str
) -> None:
    session = login(user, password)
    assert session.connack is not None, "no CONNACK"
    assert session.connack.is_failure
    assert session.connack.value in (NOT_AUTHORIZED, 134), session.connack  # 134: bad user name or password


def test_tls_listener_with_generated_ca(broker: Broker) -> None:
    """The gateway path: mqtts:// with mqtt.ca_file, through gridwatch's own client factory."""
    url = BrokerURL.parse(f"mqtts://gw-pole-017:{PASSWORD}@localhost:{broker.tls_port}")
    session = _open(make_client("tls-test", url, "5", ca_file=str(broker.ca)), broker.tls_port, url.host)
    try:
        connected(session)
        # 16 = accepted, no matching subscribers; anything >= 128 would be a refusal
        assert session.publish(f"{PREFIX}/{SITE}/gw-pole-017/status", b'{"state": "online"}') in (0, 16)
    finally:
        _close(session)


def test_tls_with_ca_from_ssl_cert_file(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """The central path: `gridwatch central run` has no CA option, so its CA comes from SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(broker.ca))
    url = BrokerURL.parse(f"mqtts://gridwatch-central:{PASSWORD}@localhost:{broker.tls_port}")
    session = _open(make_client("tls-central", url, "5"), broker.tls_port, url.host)
    try:
        connected(session)
    finally:
        _close(session)


def test_tls_refuses_a_client_that_does_not_trust_the_ca(broker: Broker, tmp_path: Path) -> None:
    """Certificate checking is really on: a CA other than the broker's makes the handshake fail."""
    other = tmp_path / "other"
    _run(["bash", str(MOSQ / "make-certs.sh"), "-o", str(other), "localhost"])
    context = ssl.create_default_context(cafile=str(other / "ca.crt"))
    with socket.create_connection(("127.0.0.1", broker.tls_port), timeout=5) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):
        context.wrap_socket(raw, server_hostname="localhost").close()


def test_only_central_publishes_on_a_gateway_s_control_topic(login: Callable[..., Session]) -> None:
    """Model updates and reloads come from central alone: neither a gateway (its own or another's control topic) nor a
    cleaner app can write there; the gateway receives exactly central's message."""
    gateway = connected(login("gw-pole-017"))
    own = f"{PREFIX}/{SITE}/gw-pole-017/control"
    gateway.subscribe(own)
    other, cleaner, central = connected(login("gw-pole-018")), connected(login("cleaner-42")), \
        connected(login("gridwatch-central"))
    assert other.publish(own, b"forged model offer") == NOT_AUTHORIZED
    assert gateway.publish(own, b"self-issued model offer") == NOT_AUTHORIZED
    assert cleaner.publish(own, b"forged model offer") == NOT_AUTHORIZED
    assert central.publish(own, b"model offer") == 0
    assert gateway.wait_for(lambda: gateway.received(own, b"model offer"))
    assert gateway.messages == [(own, b"model offer")]


def test_the_model_publisher_reports_the_broker_s_refusal_for_a_non_central_account(
    broker: Broker, tmp_path: Path,
) -> None:
    """`gridwatch models publish` logged in as a gateway: the ACL refuses its first message (MQTT 5 reason code 135)
    and the publisher says so instead of waiting for an answer that cannot come."""
    from gridwatch.central.model_publish import MqttControlChannel, publish_model
    from tests.model_updates import fake_bundle, keypair

    key, _ = keypair()
    url = BrokerURL.parse(f"mqtt://gw-pole-018:{PASSWORD}@127.0.0.1:{broker.port}")
    with MqttControlChannel(url, PREFIX, SITE, ["gw-pole-017"]) as channel:
        (result,) = publish_model(fake_bundle(tmp_path / "m", size=4000), SITE, ["gw-pole-017"], key, channel,
                                  prefix=PREFIX, timeout_s=1, chunk_size=1024)
    assert (result.ok, result.result) == (False, "error")
    assert "refused" in result.reason and "Not authorized" in result.reason, result.reason


def test_the_edge_publisher_backs_off_a_row_the_acl_refuses(broker: Broker, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Issue 8, hole 3: a refused row was resent in a hot loop (21,888 attempts in 10 s) with no log. The real
    publisher over the real broker: the PUBACK's reason code reaches it, it logs the name and waits."""
    from gridwatch.wire.outbox import Outbox
    from gridwatch.wire.publisher import MqttTransport, Publisher

    caplog.set_level(logging.WARNING, logger="gridwatch.wire.publisher")
    box = Outbox(tmp_path / "outbox.db")
    box.put("incident", f"{PREFIX}/{SITE}/gw-pole-018/kerb-cam/incident", b"not my topic")
    box.put("incident", f"{PREFIX}/{SITE}/gw-pole-017/kerb-cam/incident", b"mine")
    url = BrokerURL("127.0.0.1", broker.port, False, "gw-pole-017", PASSWORD)
    pub = Publisher(box, MqttTransport(url, f"gw-pole-017-{uuid.uuid4().hex[:6]}"), backoff_s=(30.0, 30.0)).start()
    try:
        deadline = time.monotonic() + 10
        while (pub.stats.refused, pub.stats.acked) != (1, 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (pub.stats.refused, pub.stats.acked) == (1, 1), pub.stats
        time.sleep(1.0)  # a hot loop would have sent the refused row hundreds of times by now
        assert pub.stats.published == 2, pub.stats
        assert [i.payload for i in box.pending()] == [b"not my topic"]
        assert "Not authorized (0x87)" in caplog.text
    finally:
        pub.stop()
        box.close()
