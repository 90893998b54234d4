"""MQTT client plumbing shared by the edge publisher and the central subscriber (broker URLs, paho clients).

Both sides speak MQTT 5 by default and MQTT 3.1.1 when configured (`protocol: "3.1.1"`): pure-Python brokers
(amqtt) and the MQTT endpoints of RabbitMQ and NATS only speak 3.1.1.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch.errors import GridwatchError

Protocol = Literal["5", "3.1.1"]


class BrokerURLError(GridwatchError, ValueError):
    """The broker URL cannot be used; the message says what form is expected."""


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs (broker, RTSP and database URLs often carry credentials)."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


@dataclass(frozen=True)
class BrokerURL:
    """`mqtt://[user[:password]@]host[:port]` or `mqtts://...` (TLS, default port 8883)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        parsed = urlparse(url if "://" in url else f"mqtt://{url}")
        if parsed.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise BrokerURLError(f"broker URL {redact_url(url)!r}: scheme must be mqtt:// or mqtts://")
        if not parsed.hostname:
            raise BrokerURLError(f"broker URL {redact_url(url)!r}: no host; expected mqtt://HOST:PORT")
        tls = parsed.scheme in ("mqtts", "ssl")
        try:
            port = parsed.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise BrokerURLError(f"broker URL {redact_url(url)!r}: bad port ({exc})") from exc
        user = unquote(parsed.username) if parsed.username else None
        password = unquote(parsed.password) if parsed.password else None
        return cls(parsed.hostname, port, tls, user, password)

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def make_client(
    client_id: str,
    broker: BrokerURL,
    protocol: Protocol = "5",
    *,
    manual_ack: bool = False,
    clean_start: bool = True,
    ca_file: str | None = None,
) -> mqtt.Client:
    """A paho client configured for `broker` (credentials, TLS) that the caller connects and loops."""
    proto = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
    kwargs: dict[str, object] = {}
    if protocol != "5":
        kwargs["clean_session"] = clean_start
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=proto,
        manual_ack=manual_ack,
        **kwargs,  # type: ignore[arg-type]
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client
