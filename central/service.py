"""The central service: the composition root that wires session, handler and dispatch together.

    MqttSession --on_message--> inbox --worker: a batch--> MessageHandler (one commit) --> _after_commit(batch)
                                                               |  (same transaction)          session.ack_many(batch)
                                                               v                              (one write of PUBACKs)
                                        dispatch_outbox --Publisher--> session.publish --> PUBACK --> delete
                                                                    (in the next batch's transaction)

Delivery guarantees (see ARCHITECTURE.md, "Rules of the house"):

- Incidents: QoS 1, acknowledged only after the transaction committed (`transport`), persistent session; the
  `event_id` primary key turns a redelivery into a harmless `duplicate` (`handler`).
- Case assignments: written in the case's transaction and published from the dispatch outbox until the broker
  acknowledges them with a subscriber to give them to (MQTT 5: a PUBACK "no matching subscribers" backs the row off
  and sends it again for up to 60 s: a broker crash lost the cleaner app's session), and again after
  every reconnect for `dispatch_replay_s` after that (a broker that crashes before its next save loses what it
  acknowledged; `dispatch`): at least once, deduplicated by the app on `assignment_id`.
- Subscriptions: made again on every connect. A broker that crashed before saving central's session comes back
  without it (`session present: False`): what gateways sent before central resubscribed went nowhere, and comes
  again from their outboxes, which keep each message until central's receipt.
- Messages are handled in arrival order by one worker thread, so the network loop never blocks on the
  database. The worker takes a batch: the first message waiting, then whatever arrives within `batch_ms` of it,
  up to `batch_size` messages; the batch is committed in one transaction (runs of incident messages with a few
  multi-row statements, falling back to a savepoint per message when that fails; see `handler`), and only then
  is each of its messages acknowledged (`_after_commit`). A crash before the commit
  acknowledges nothing: the broker delivers the whole batch again and the `event_id` key makes each a duplicate.
  One commit per batch instead of per message is what lets central keep up with the broker (issue 8:
  `benchmarks/chaos_rate.py`). Over MQTT 5 central asks the broker (Receive Maximum) for `2 * batch_size`
  un-acknowledged messages at a time, so the next batch arrives while one commits; while PostgreSQL executes a
  batch's writes the worker parses the next one (`_prefetch`). It holds at most `INBOX_BATCHES` batches and
  `INBOX_MAX_BYTES` received (`_inbox_room`): past them the session stops reading and the backlog stays in the
  broker, which Mosquitto 2.0.11 needs (it sends a further Receive Maximum of messages for every PUBACK).
- Receipts: after each commit (any final outcome) the event id goes back to its gateway in a batched receipt
  (`central.receipts`), so the gateway can delete its outbox row; the broker's PUBACK alone is not enough, as
  the broker may crash before saving what it acknowledged.

- Evidence without an `evidence_dir`: central still subscribes to the evidence topic, acknowledges each message
  at once, receipts it by the event id it carries and counts it as `evidence_discarded`, so a gateway that
  publishes snapshots drains its outbox instead of resending them forever.

Topics: a plain persistent subscription to `{prefix}/+/+/+/incident` and `.../evidence` by default (or to the
`sites` given: `{prefix}/{site}/+/+/incident`). That is the mode that loses nothing over a broker restart: the
broker restores the subscription from its persistence and queues for it while central is away. A `share_group`
(`$share/{group}/...`, MQTT 5) splits the load over several instances, but Mosquitto queues nothing for a group
that has no member connected: events published after a broker restart and before the first member is back are
lost. Several centrals without loss: one plain persistent session each (its own `client_id`) over disjoint
`sites`, or a broker that queues for shared groups.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from gridwatch.central.categories import CategoryTable, load_categories
from gridwatch.central.dispatch import DISPATCH_REPLAY_S, DispatchOutbox
from gridwatch.central.errors import CentralError
from gridwatch.central.handler import Counters, EventsLog, MessageHandler, Tally
from gridwatch.central.ingest import IngestResult
from gridwatch.central.ingest_batch import parse_incident
from gridwatch.central.receipts import ReceiptSender
from gridwatch.central.roster import Roster
from gridwatch.central.store import Store, open_store, utcnow
from gridwatch.central.transport import SESSION_EXPIRY_S, Inbound, MqttSession, PublishPort, Session
from gridwatch.wire.mqtt import BrokerURL, Protocol
from gridwatch.wire.publisher import Publisher
from gridwatch.wire.topics import DEFAULT_PREFIX, EdgeKind, edge_filter

__all__ = ["DEFAULT_BATCH_MS", "DEFAULT_BATCH_SIZE", "DEFAULT_CLIENT_ID", "CentralError", "CentralService",
           "Committed", "Counters", "settle_heap"]

log = logging.getLogger("gridwatch.central")

DEFAULT_CLIENT_ID = "gridwatch-central"
DISPATCH_MAX_INFLIGHT = 20
# An assignment the broker answers "no matching subscribers" goes again (1 s, doubling) for this long, then counts as
# sent: a cleaner app whose session a broker crash lost subscribes again within seconds; a topic nobody subscribes
# to (a desk that does not use the app) must not pile up in the outbox.
DISPATCH_UNMATCHED_RETRY_S = 60.0
DEFAULT_BATCH_SIZE = 400
DEFAULT_BATCH_MS = 50.0
# Received messages central holds at most, in batches: its Receive Maximum (2 batches) is the normal bound, this
# one holds when a broker sends past it (Mosquitto 2.0.11 does with a backlog: `MqttSession`)
INBOX_BATCHES = 4
INBOX_MAX_BYTES = 64 * 1024 * 1024  # and at most this many payload bytes (evidence may be 4 MiB a message)
MAX_BATCH_SIZE = 32767  # twice it is MQTT 5's largest Receive Maximum
GC_GEN0_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)


class Committed(NamedTuple):
    """A message whose transaction committed, and what it did (what `_after_commit` receives)."""

    msg: Inbound
    result: IngestResult


class CentralService:
    """Subscribe, ingest, commit, acknowledge, dispatch. `start()` / `stop()`; also a context manager.

    Example (a broker on localhost, cases in `cases.db`)::

        with CentralService("mqtt://127.0.0.1:1883", "sqlite:///cases.db") as svc:
            svc.wait_for(lambda: svc.counters.stored >= 1, timeout=60)
    """

    def __init__(
        self,
        broker_url: str,
        db_url: str,
        prefix: str = DEFAULT_PREFIX,
        protocol: Protocol = "5",
        client_id: str = DEFAULT_CLIENT_ID,
        share_group: str | None = None,
        evidence_dir: str | Path | None = None,
        events_log: str | Path | None = None,
        roster: Roster | None = None,
        categories: CategoryTable | None = None,
        *,
        sites: tuple[str, ...] = (),
        session_expiry_s: int = SESSION_EXPIRY_S,
        ca_file: str | None = None,
        session: Callable[[], Session] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_ms: float = DEFAULT_BATCH_MS,
        dispatch_replay_s: float = DISPATCH_REPLAY_S,
    ) -> None:
        """Configure; nothing connects until `start()`. A bad broker URL raises `BrokerURLError` here.

        - `client_id`: names the broker session. Keep it stable across restarts, or messages published while
          central was down are lost; give each instance of a share group its own.
        - `share_group`: MQTT 5 shared subscription group; instances in one group split the messages, and with
          Mosquitto lose what is published while no member is connected (after a broker restart). `None` (the
          default, and always on MQTT 3.1.1) subscribes to the plain topics: every instance gets every message.
        - `sites`: subscribe to these sites' topics only (default: every site), so several centrals with plain
          persistent sessions can split the city without loss.
        - `evidence_dir`: where snapshots are written; with `None` evidence is acknowledged, receipted and counted
          as `evidence_discarded`, not stored.
        - `events_log`: a file that gets every incident payload as received, one line each, before
          validation (CR/LF inside a payload become spaces); the demo's `events.jsonl`.
        - `roster` / `categories`: default to "everything to dispatch-desk" and the shipped category table.
        - `session_expiry_s`: how long (MQTT 5) the broker keeps the session and queues messages while
          central is down.
        - `session`: makes the broker session for each `start()` (tests pass a `FakeSession`); by default an
          `MqttSession` for `broker_url`.
        - `batch_size` / `batch_ms`: commit up to this many messages in one transaction, waiting at most this
          long after the first for more (1 / 0: one transaction per message). Out of range: `CentralError`.
        - `dispatch_replay_s`: assignments the broker acknowledged this long before a connection was lost are sent
          again after the reconnect (the broker may have crashed before saving them; `central.dispatch`). Keep it
          above the broker's `autosave_interval`.
        """
        self.batch_size, self.batch_ms = check_batch(batch_size, batch_ms)
        if not 0 <= dispatch_replay_s <= 7 * 24 * 3600:
            raise CentralError(f"dispatch replay {dispatch_replay_s} s: choose 0 to 604800 s")
        self.dispatch_replay_s = float(dispatch_replay_s)
        self.broker = BrokerURL.parse(broker_url)
        self.db_url = db_url
        self.prefix = prefix
        self.protocol: Protocol = protocol
        self.client_id = client_id
        self.share_group = share_group
        self.sites = tuple(sites)
        self.evidence_dir = Path(evidence_dir) if evidence_dir is not None else None
        self.events_log = Path(events_log) if events_log is not None else None
        self.roster = roster or Roster()
        self.categories = categories or load_categories()
        self.session_expiry_s = session_expiry_s
        self.ca_file = ca_file
        self._make_session = session or self._mqtt_session
        self._tally = Tally()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._inbox = Inbox()
        self._ahead: list[Inbound] = []  # taken from the inbox and parsed during the previous batch (`_prefetch`)
        self._session: Session | None = None
        self._store: Store | None = None
        self._handler: MessageHandler | None = None
        self._dispatch: DispatchOutbox | None = None
        self._publisher: Publisher | None = None
        self.receipts: ReceiptSender | None = None
        self._worker: threading.Thread | None = None
        self._log: EventsLog | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------

    def topics(self) -> list[str]:
        """The subscription filters (shared on MQTT 5 when a share group is set)."""
        names: list[EdgeKind] = ["incident", "evidence"]  # evidence even without a folder: to receipt it
        plain = [edge_filter(self.prefix, name, site) for site in self.sites or ("+",) for name in names]
        if self.protocol == "5" and self.share_group:
            return [f"$share/{self.share_group}/{t}" for t in plain]
        return plain

    def start(self, *, wait: bool = True, timeout: float = 10.0) -> CentralService:
        """Open the store, start the dispatch publisher, connect (in the background, retrying), start the worker.

        With `wait`, return only once the subscriptions are acknowledged, or raise `CentralError` after
        `timeout` seconds (the service is stopped first). Without it, a broker that is down is retried.
        """
        if self._session is not None:
            raise CentralError("the service is already started")
        self._stopping.clear()
        self._store = open_store(self.db_url)
        if self.events_log is not None:
            self._log = EventsLog(self.events_log)
        outbox = self._dispatch = DispatchOutbox(self._store, replay_s=self.dispatch_replay_s)
        self._handler = MessageHandler(self._store, self.categories, self.roster, prefix=self.prefix,
                                       evidence_dir=self.evidence_dir, tally=self._tally, pause=self._stopping.wait,
                                       outbox=outbox, meanwhile=self._prefetch)
        self._session = self._make_session()
        session = self._session
        self.receipts = ReceiptSender(lambda topic, payload: session.publish(topic, payload, {}), self.prefix)
        # an assignment no cleaner app is subscribed to (MQTT 5 PUBACK 0x10) stays and goes again for a while
        self._publisher = Publisher(outbox, PublishPort(self._session), DISPATCH_MAX_INFLIGHT,
                                    on_acked=lambda _item: self._tally.bump("dispatched"),
                                    retry_unmatched_s=DISPATCH_UNMATCHED_RETRY_S).start()
        self._session.connect(_Events(self))
        self._worker = threading.Thread(target=self._work, name="central-worker", daemon=True)
        self._worker.start()
        if wait and not self._subscribed.wait(timeout):
            self.stop()
            raise CentralError(f"not subscribed at {self.broker} within {timeout}s (is the broker up?)")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, stop dispatching, disconnect (the session stays on the broker), close.

        Messages still queued are not acknowledged: the broker delivers them again on the next start.
        Assignments not yet acknowledged stay in the dispatch outbox and go out on the next start.
        """
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None
        self._flush_receipts()  # what the worker committed last, while the session is still up
        if self._publisher is not None:
            self._publisher.stop()
            self._publisher = None
        if self._session is not None:
            self._session.stop()
            self._session = None
        self._subscribed.clear()
        self._inbox = Inbox()
        self._ahead = []
        if self._handler is not None:
            self._write_bookkeeping()  # the PUBACKs seen since the last batch: their rows go now
        self._handler = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> CentralService:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- state -------------------------------------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        """The live counters (read them through `snapshot()` for a consistent copy)."""
        return self._tally.counters

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
        return self._tally.wait_for(predicate, timeout)

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters."""
        return self._tally.snapshot()

    # --- wiring ------------------------------------------------------------------------------------------

    def _mqtt_session(self) -> Session:
        return MqttSession(self.broker, self.client_id, self.protocol, session_expiry_s=self.session_expiry_s,
                           ca_file=self.ca_file, receive_maximum=2 * self.batch_size, room=self._inbox_room)

    def _inbox_room(self) -> int:
        """How many more messages the session may hand over now (network thread): the inbox and the messages
        parsed ahead hold at most `INBOX_BATCHES` batches and the inbox `INBOX_MAX_BYTES` of payloads (plus the
        last read's overshoot); beyond, a backlog stays in the broker."""
        if self._inbox.bytes >= INBOX_MAX_BYTES:
            return 0
        return INBOX_BATCHES * self.batch_size - self._inbox.qsize() - len(self._ahead)

    def _work(self) -> None:
        while not self._stopping.is_set():
            batch = self._next_batch()
            if not batch:
                self._write_bookkeeping()
                self._flush_receipts()
                continue
            try:
                self._handle_batch(batch)
            except Exception:  # the loop must survive anything
                log.exception("central: unexpected error handling a batch of %d messages", len(batch))
                self._tally.bump("errors")

    def _flush_receipts(self) -> None:
        """Idle for 0.2 s: send the receipts collected so far (a busy worker sends them in full or timed batches,
        so a trickle of messages does not become one receipt per message)."""
        try:
            if self.receipts is not None:
                self.receipts.flush()
        except Exception:  # a receipt not sent is only a resend by the gateway later
            log.exception("central: sending receipts failed")

    def _next_batch(self) -> list[Inbound]:
        """The messages parsed ahead, else the first message waiting (up to 0.2 s); then what arrives within
        `batch_ms`, up to `batch_size`."""
        batch, self._ahead = self._ahead, []
        if not batch:
            try:
                batch = [self._inbox.get(timeout=0.2)]
            except queue.Empty:
                return []
        deadline = time.monotonic() + self.batch_ms / 1000
        while len(batch) < self.batch_size and not self._stopping.is_set():
            try:
                batch.append(self._inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _prefetch(self) -> None:
        """While PostgreSQL executes a batch's writes (`MessageHandler.meanwhile`, on this worker thread): take the
        messages already waiting, up to a batch, and parse each incident message (`parse_incident`: no database),
        so the next batch starts with its parsing done. Only messages already received: nothing waits here.

        Issue 8: the worker sat idle while the server wrote; `benchmarks/ingest_drain.py` measures the gain."""
        while len(self._ahead) < self.batch_size:
            try:
                msg = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._ahead.append(self._parsed(msg))

    def _parsed(self, msg: Inbound) -> Inbound:
        """`msg` with what `parse_incident` makes of it (evidence as it is)."""
        if msg.is_evidence:
            return msg
        try:
            parsed = parse_incident(msg.topic, msg.payload, self.prefix, utcnow())
        except Exception:  # it cannot raise; if it did, the batch parses the message again, as without this
            log.exception("central: parsing ahead failed on %s", msg.topic)
            return msg
        return msg.with_parsed(parsed)

    def _write_bookkeeping(self) -> None:
        try:
            if self._handler is not None:
                self._handler.write_bookkeeping()
        except Exception:  # the rows stay and are sent again; the app drops them by assignment_id
            log.exception("central: could not update the dispatch outbox")

    def _handle_batch(self, batch: list[Inbound]) -> None:
        if self._log is not None:
            self._log.append_many([msg.payload for msg in batch if not msg.is_evidence])
        assert self._handler is not None
        results = self._handler.handle_batch(batch)
        # not committed (None): left un-acknowledged for redelivery
        self._after_commit([Committed(msg, res) for msg, res in zip(batch, results, strict=True) if res is not None])

    def _after_commit(self, committed: list[Committed]) -> None:
        """The one place that runs after a batch's commit (and its files): acknowledge each message, wake the
        dispatch publisher, collect the receipts for the gateways (`central.receipts`)."""
        assert self._session is not None
        self._session.ack_many([item.msg for item in committed])
        if self.receipts is not None:
            for item in committed:
                self.receipts.after_commit(item.msg, item.result)
        if self._publisher is not None and any(item.result.dispatch is not None for item in committed):
            self._publisher.notify()


    def _discard(self, msg: Inbound) -> None:
        """Evidence this central does not store (no `evidence_dir`): nothing to commit, so acknowledge it and
        receipt it now (on the network thread), and count it."""
        if self._session is not None:
            self._session.ack(msg)
        if self.receipts is not None:
            self.receipts.after_discard(msg)
        self._tally.bump("evidence_discarded")


class Inbox:
    """The worker's queue of received messages (put by the network thread), with the payload bytes it holds, for
    `CentralService._inbox_room`. A C `SimpleQueue` (no Condition per put and get) and a lock for the count."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.bytes = 0

    def put(self, msg: Inbound) -> None:
        with self._lock:
            self.bytes += len(msg.payload)
        self._queue.put(msg)

    def get(self, timeout: float | None = None) -> Inbound:
        """The oldest message, waiting up to `timeout` (`queue.Empty` after it)."""
        return self._taken(self._queue.get(timeout=timeout))

    def get_nowait(self) -> Inbound:
        return self._taken(self._queue.get_nowait())

    def qsize(self) -> int:
        return self._queue.qsize()

    def _taken(self, msg: Inbound) -> Inbound:
        with self._lock:
            self.bytes -= len(msg.payload)
        return msg


def settle_heap() -> None:
    """For a process that runs the service and nothing else (`gridwatch central run`), once it has started:
    collect, then move every object alive so far (modules, SQLAlchemy's and pydantic's caches: ~90,000) out of
    the cyclic garbage collector's sight (`gc.freeze`), and collect the young generation every
    `GC_GEN0_THRESHOLD` allocations instead of every 700.

    Issue 8: a batch of 400 messages allocates enough to trigger a full collection every few batches, and each
    one walked every start-up object again: 0.02-0.03 ms per event, about a quarter of the worker's CPU
    (`benchmarks/chaos_rate.py`, in-process). Frozen objects are never freed, which costs nothing for what a
    service keeps until it exits; garbage made later is collected as before.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def check_batch(batch_size: int, batch_ms: float) -> tuple[int, float]:
    """The batch settings, or a `CentralError` that says what is allowed."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise CentralError(f"batch size {batch_size}: choose 1 to {MAX_BATCH_SIZE} messages per transaction")
    if not 0 <= batch_ms <= 10_000:
        raise CentralError(f"batch wait {batch_ms} ms: choose 0 to 10000 ms")
    return batch_size, float(batch_ms)


class _Events:
    """Routes the session's events: messages to the worker's inbox, connection changes and PUBACKs to the
    dispatch publisher, subscription state to `CentralService.connected`."""

    def __init__(self, service: CentralService) -> None:
        self.service = service

    def on_connected(self) -> None:
        svc = self.service
        if svc._session is not None:
            svc._session.subscribe(svc.topics())  # every connect: a crashed broker may come back without them
        if svc._dispatch is not None:
            svc._dispatch.connected()  # before the publisher wakes: the assignments the broker may have lost
        if svc._publisher is not None:
            svc._publisher.on_connected()

    def on_subscribed(self, refused: list[str]) -> None:
        svc = self.service
        if refused:
            log.error("central: subscription refused: %s", ", ".join(refused))
            return
        log.info("central: subscribed to %s", ", ".join(svc.topics()))
        svc._subscribed.set()
        svc._tally.notify()

    def on_disconnected(self) -> None:
        svc = self.service
        svc._subscribed.clear()
        svc._tally.notify()
        if svc._dispatch is not None:
            svc._dispatch.disconnected()
        if svc._publisher is not None:
            svc._publisher.on_disconnected()
        if not svc._stopping.is_set():
            log.warning("central: disconnected from %s; reconnecting", svc.broker)

    def on_message(self, msg: Inbound) -> None:
        svc = self.service
        if msg.is_evidence and svc.evidence_dir is None:
            svc._discard(msg)
        else:
            svc._inbox.put(msg)
        svc._tally.bump("received")

    def on_ack(self, mid: int, reason_code: int) -> None:
        if self.service._publisher is not None:
            self.service._publisher.on_ack(mid, reason_code)
