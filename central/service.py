"""The central subscriber: MQTT in, committed cases out, acknowledgement last.

Delivery guarantees (see ARCHITECTURE.md, "Rules of the house"):

- QoS 1 subscriptions with paho `manual_ack=True`; a message is acknowledged only after its database
  transaction committed. A crash before the commit leaves it un-acknowledged, the broker redelivers it,
  and the `event_id` primary key turns the redelivery into a harmless `duplicate`.
- A persistent session (stable client id; MQTT 5 `clean_start=False` + session expiry, MQTT 3.1.1
  `clean_session=False`) so messages published while central is down are delivered when it comes back.
- paho reconnects with backoff (1 s .. 30 s) and `on_connect` subscribes again.
- Messages are handled in arrival order by one worker thread, so the network loop never blocks on the
  database. Database outages are retried with backoff and the message stays un-acknowledged; any other
  exception in a handler is logged, counted and dead-lettered, and the loop carries on.

Topics: `$share/{group}/{prefix}/+/+/incident` and `.../evidence` on MQTT 5 (several central instances share
the load); plain topics on MQTT 3.1.1, which brokers such as amqtt or RabbitMQ serve without `$share`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from gridwatch.central.categories import CategoryTable, load_categories
from gridwatch.central.dispatch import assignment_topic
from gridwatch.central.ingest import IngestResult, dead_letter, ingest_evidence, ingest_incident
from gridwatch.central.roster import Roster
from gridwatch.central.store import Store, open_store, utcnow
from gridwatch.errors import GridwatchError
from gridwatch.wire.assignment import CaseAssignment
from gridwatch.wire.mqtt import BrokerURL, Protocol, make_client
from gridwatch.wire.topics import DEFAULT_PREFIX

log = logging.getLogger("gridwatch.central")

DEFAULT_CLIENT_ID = "gridwatch-central"
SESSION_EXPIRY_S = 7 * 24 * 3600
MAX_RACE_RETRIES = 3
MAX_DB_BACKOFF_S = 5.0


class CentralError(GridwatchError, RuntimeError):
    """The service could not start (broker unreachable within the wait, subscription refused)."""


@dataclass
class Counters:
    """What the service has seen since start. `stored` counts new incident events (including stale ones)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    evidence: int = 0
    dispatched: int = 0
    errors: int = 0


@dataclass(frozen=True)
class Inbound:
    """One received MQTT message, queued for the worker."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    properties: dict[str, str]
    generation: int

    @property
    def is_evidence(self) -> bool:
        return self.topic.endswith("/evidence")


def flatten_properties(props: Properties | None) -> dict[str, str]:
    """MQTT 5 content type and user properties as a flat dict (empty for MQTT 3.1.1)."""
    if props is None:
        return {}
    flat: dict[str, str] = {str(k): str(v) for k, v in getattr(props, "UserProperty", [])}
    content_type = getattr(props, "ContentType", None)
    if content_type:
        flat["content_type"] = str(content_type)
    return flat


def one_line(payload: bytes) -> bytes:
    """The payload on one line: CR/LF become spaces (JSON whitespace, so valid JSON keeps its meaning)."""
    return payload.replace(b"\r", b" ").replace(b"\n", b" ") + b"\n"


class CentralService:
    """Subscribe, ingest, commit, acknowledge, dispatch. `start()` / `stop()`; also a context manager."""

    def __init__(
        self,
        broker_url: str,
        db_url: str,
        prefix: str = DEFAULT_PREFIX,
        protocol: Protocol = "5",
        client_id: str = DEFAULT_CLIENT_ID,
        share_group: str | None = "central",
        evidence_dir: str | Path | None = None,
        events_log: str | Path | None = None,
        roster: Roster | None = None,
        categories: CategoryTable | None = None,
        *,
        session_expiry_s: int = SESSION_EXPIRY_S,
        ca_file: str | None = None,
    ) -> None:
        """Configure; nothing connects until `start()`.

        - `client_id`: names the broker session. Keep it stable across restarts, or messages published while
          central was down are lost; give each instance of a share group its own.
        - `share_group`: MQTT 5 shared subscription group; instances in one group split the messages.
          `None` (or MQTT 3.1.1) subscribes to the plain topics: every instance then gets every message.
        - `evidence_dir`: where snapshots are written; `None` does not subscribe to the evidence topic.
        - `events_log`: a file that gets every incident payload as received, one line each, before
          validation (CR/LF inside a payload become spaces); the demo's `events.jsonl`.
        - `roster` / `categories`: default to "everything to dispatch-desk" and the shipped category table.
        - `session_expiry_s`: how long (MQTT 5) the broker keeps the session and queues messages while
          central is down.
        """
        self.broker = BrokerURL.parse(broker_url)
        self.db_url = db_url
        self.prefix = prefix
        self.protocol: Protocol = protocol
        self.client_id = client_id
        self.share_group = share_group
        self.evidence_dir = Path(evidence_dir) if evidence_dir is not None else None
        self.events_log = Path(events_log) if events_log is not None else None
        self.roster = roster or Roster()
        self.categories = categories or load_categories()
        self.session_expiry_s = session_expiry_s
        self.ca_file = ca_file
        self.counters = Counters()
        self._changed = threading.Condition()
        self._inbox: queue.Queue[Inbound] = queue.Queue()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._generation = 0
        self._client: mqtt.Client | None = None
        self._store: Store | None = None
        self._worker: threading.Thread | None = None
        self._log_file: IO[bytes] | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------

    def topics(self) -> list[str]:
        """The subscription filters (shared on MQTT 5 when a share group is set)."""
        names = ["incident"] + (["evidence"] if self.evidence_dir is not None else [])
        plain = [f"{self.prefix}/+/+/{name}" for name in names]
        if self.protocol == "5" and self.share_group:
            return [f"$share/{self.share_group}/{t}" for t in plain]
        return plain

    def start(self, *, wait: bool = True, timeout: float = 10.0) -> CentralService:
        """Open the store, connect (in the background, retrying) and start the worker.

        With `wait`, return only once the subscriptions are acknowledged, or raise `CentralError` after
        `timeout` seconds (the service is stopped first). Without it, a broker that is down is retried.
        """
        if self._client is not None:
            raise CentralError("the service is already started")
        self._stopping.clear()
        self._store = open_store(self.db_url)
        if self.events_log is not None:
            self.events_log.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self.events_log.open("ab")
        self._client = self._make_client()
        self._connect(self._client)
        self._client.loop_start()
        self._worker = threading.Thread(target=self._work, name="central-worker", daemon=True)
        self._worker.start()
        if wait and not self._subscribed.wait(timeout):
            self.stop()
            raise CentralError(f"not subscribed at {self.broker} within {timeout}s (is the broker up?)")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the message in hand, disconnect (the session stays on the broker), close the store.

        Messages still queued are not acknowledged: the broker delivers them again on the next start.
        """
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self._subscribed.clear()
        self._inbox = queue.Queue()
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> CentralService:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def store(self) -> Store:
        """The open store (only between `start()` and `stop()`)."""
        if self._store is None:
            raise CentralError("the service is not started")
        return self._store

    @property
    def connected(self) -> bool:
        return self._subscribed.is_set()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Block until `predicate()` is true or `timeout` passes; re-checked on every counter or connection
        change, so `lambda: svc.counters.stored >= 3` and `lambda: svc.connected` both work."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._changed:
            return asdict(self.counters)

    # --- MQTT --------------------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = make_client(
            self.client_id, self.broker, self.protocol, manual_ack=True, clean_start=False, ca_file=self.ca_file
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect(self, client: mqtt.Client) -> None:
        if self.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
            client.connect_async(self.broker.host, self.broker.port, keepalive=30, clean_start=False, properties=props)
        else:
            client.connect_async(self.broker.host, self.broker.port, keepalive=30)

    def _on_connect(self, client: mqtt.Client, _ud: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("central: broker %s refused the connection: %s", self.broker, reason)
            return
        self._generation += 1
        log.info("central: connected to %s (session present: %s)", self.broker, flags.session_present)
        client.subscribe([(topic, 1) for topic in self.topics()])

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, _mid: int, reasons: list[Any], _props: Any) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("central: subscription refused: %s", ", ".join(failed))
            return
        log.info("central: subscribed to %s", ", ".join(self.topics()))
        self._subscribed.set()
        self._notify()

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._subscribed.clear()
        self._notify()
        if not self._stopping.is_set():
            log.warning("central: disconnected from %s (%s); reconnecting", self.broker, reason)

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        props = flatten_properties(getattr(msg, "properties", None))
        self._inbox.put(Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, props, self._generation))
        self._bump("received")

    def _ack(self, msg: Inbound) -> None:
        """PUBACK after the commit; skipped when the connection the message came on is gone (redelivered)."""
        if self._client is not None and msg.qos > 0 and msg.generation == self._generation:
            self._client.ack(msg.mid, msg.qos)

    def _publish_dispatch(self, assignment: CaseAssignment) -> None:
        if self._client is None:
            return
        topic = assignment_topic(self.prefix, assignment)
        self._client.publish(topic, assignment.model_dump_json(), qos=1)
        self._bump("dispatched")

    # --- worker ------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                msg = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._handle(msg)
            except Exception:  # the loop must survive anything
                log.exception("central: unexpected error handling a message on %s", msg.topic)
                self._bump("errors")

    def _handle(self, msg: Inbound) -> None:
        if not msg.is_evidence:
            self._append_log(msg.payload)
        result = self._commit_with_retry(msg)
        if result is None:  # stopping while the database is unavailable: leave it for redelivery
            return
        self._ack(msg)
        if result.dispatch is not None:
            self._publish_dispatch(result.dispatch)
        self._count(result)

    def _append_log(self, payload: bytes) -> None:
        if self._log_file is not None:
            self._log_file.write(one_line(payload))
            self._log_file.flush()

    def _ingest(self, msg: Inbound) -> IngestResult:
        """Ingest and commit one message in its own transaction."""
        with self.store.session() as session:
            now = utcnow()
            if msg.is_evidence and self.evidence_dir is not None:
                result = ingest_evidence(session, msg.topic, msg.payload, msg.properties, self.evidence_dir, now=now)
            else:
                result = ingest_incident(session, msg.topic, msg.payload, self.categories, self.roster, now=now)
            session.commit()
            return result

    def _commit_with_retry(self, msg: Inbound) -> IngestResult | None:
        """Ingest `msg`; retry races and database outages; dead-letter anything else."""
        races, delay = 0, 0.1
        while True:
            try:
                return self._ingest(msg)
            except IntegrityError as exc:  # another central instance stored the same event/case first
                races += 1
                log.info("central: write race on %s (%s); retry %d", msg.topic, exc.orig, races)
                if races >= MAX_RACE_RETRIES:
                    return self._dead_letter_error(msg, exc)
            except (OperationalError, InterfaceError) as exc:
                log.warning("central: database unavailable (%s); retrying in %.1fs", exc.orig, delay)
                if self._stopping.wait(delay):
                    return None
                delay = min(delay * 2, MAX_DB_BACKOFF_S)
            except Exception as exc:
                log.exception("central: handler failed for a message on %s", msg.topic)
                return self._dead_letter_error(msg, exc)

    def _dead_letter_error(self, msg: Inbound, exc: BaseException) -> IngestResult | None:
        self._bump("errors")
        try:
            with self.store.session() as session:
                result = dead_letter(session, msg.topic, msg.payload, f"handler error: {exc!r}", utcnow())
                session.commit()
                return result
        except Exception:
            log.exception("central: could not dead-letter a message on %s; leaving it un-acked", msg.topic)
            return None

    def _count(self, result: IngestResult) -> None:
        name = {
            "created": "stored",
            "updated": "stored",
            "stale": "stored",
            "duplicate": "duplicates",
            "dead_letter": "dead_letters",
            "evidence": "evidence",
        }[result.kind]
        self._bump(name)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _bump(self, name: str) -> None:
        with self._changed:
            setattr(self.counters, name, getattr(self.counters, name) + 1)
            self._changed.notify_all()
