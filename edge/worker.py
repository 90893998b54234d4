"""The gateway worker: the composition root of the edge.

Start order: outbox -> detector (the installed model update, else the configured model) -> model updater
(subscribed to the gateway's control topic) -> publisher (transport) -> one thread per camera -> status heartbeat.
Cameras hold a `SwappableDetector`, so a model update (`edge.model_update`) swaps the model between frames; the
retained status names the running model and the last update's outcome.
Each camera thread runs the one camera loop (`gridwatch.edge.loop.run_camera`) with the outbox sink plus any
sinks the caller adds (the demo's review video and progress bar).

Stop order is the reverse, and bounded so a stop finishes well inside the 30 s a container runtime or systemd
waits: cameras stop reading (they notice the stop event between frames and while a source blocks), each camera's
open incidents are ended (`flush`, reason `shutdown`) and kept in the resume state file (`edge.resume`) so the next
start continues them, the publisher drains the outbox for at most `drain_s`, the retained status says
`offline`. Anything not yet acknowledged stays in the outbox file for the next start, so stopping fast loses
nothing.

A camera thread that raises is logged, counted and restarted (up to `max_restarts`), never taking the others down.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gridwatch.calibration.grid import GridLayer
from gridwatch.edge.camera import CameraPipeline, Emitted, FrameResult
from gridwatch.edge.config import CameraConfig, ConfigError, SiteConfig
from gridwatch.edge.detectors import DetectorSet, load_detectors
from gridwatch.edge.hard_examples import example_store, hard_example_sink
from gridwatch.edge.loop import FrameSource, LoopReport, Sink, run_camera
from gridwatch.edge.model_swap import RecentFrames, SwappableDetector
from gridwatch.edge.model_update import ModelUpdater, startup_detector, updatable_name
from gridwatch.edge.resume import ResumeSink, ResumeState, state_path
from gridwatch.edge.secrets import expand
from gridwatch.edge.sinks import CallbackSink
from gridwatch.edge.sinks_outbox import OutboxSink
from gridwatch.edge.sources import open_source
from gridwatch.models.base import Detector
from gridwatch.wire.mqtt import BrokerURL
from gridwatch.wire.outbox import Outbox
from gridwatch.wire.publisher import RESEND_S, MqttTransport, Publisher, Transport, Will
from gridwatch.wire.receipts import ReceiptListener
from gridwatch.wire.topics import receipt_topic, status_topic

# Stop budget (defect 6: a stop must end well inside the 30 s systemd or a container runtime waits).
CAMERA_JOIN_S = 2.0  # all camera threads together; they check the stop event between frames and while blocked
DRAIN_S = 2.0  # the outbox keeps whatever is not acknowledged by then, for the next start
PUBLISHER_JOIN_S = 1.0  # the sending thread, woken and told to stop, leaves between two rows
STOP_BUDGET_S = CAMERA_JOIN_S + DRAIN_S + PUBLISHER_JOIN_S
"""Every wait of `EdgeWorker.stop` together (5 s, well inside a supervisor's kill timeout); what a stop costs
beyond it is CPU work, which a loaded machine stretches."""

log = logging.getLogger(__name__)


@dataclass
class CameraStats:
    frames: int = 0
    analysed: int = 0
    events: int = 0
    errors: int = 0
    restarts: int = 0


@dataclass
class StatsSink:
    """Keeps a camera's counters (health topic, demo progress) current."""

    stats: CameraStats
    source: FrameSource

    def on_frame(self, result: FrameResult) -> None:
        self.stats.frames = self.source.stats.frames
        self.stats.analysed += 1

    def on_events(self, emitted: list[Emitted]) -> None:
        """Counted by the outbox sink."""

    def close(self) -> None:
        self.stats.frames = self.source.stats.frames


SinkFactory = Callable[[CameraConfig, FrameSource], Sequence[Sink]]


@dataclass
class EdgeWorker:
    cfg: SiteConfig
    broker: str | None = None
    detector: Detector | DetectorSet | None = None  # the site's detectors by name, or one for every camera (tests)
    transport: Transport | None = None
    start_wall: datetime | None = None
    on_emitted: Callable[[Emitted], None] | None = None
    extra_sinks: SinkFactory | None = None
    max_restarts: int = 5
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    stats: dict[str, CameraStats] = field(default_factory=dict)
    reports: dict[str, LoopReport] = field(default_factory=dict)
    pending: int = 0  # outbox rows left undelivered at stop
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _emit_lock: threading.Lock = field(default_factory=threading.Lock)
    _status_lock: threading.Lock = field(default_factory=threading.Lock)
    _started: float = 0.0

    def start(self) -> EdgeWorker:
        cfg = self.cfg
        self._started = time.monotonic()
        self.outbox = Outbox(cfg.outbox.path, cfg.outbox.max_rows)
        self.transport = self.transport or self._mqtt_transport()
        self.swappable, self.detector, started_with = self._updatable_detectors(cfg)
        self.recent = RecentFrames(cfg.model_update.compare_frames, cfg.model_update.compare_every)
        self.updater = ModelUpdater(cfg, self.swappable, self.recent, on_outcome=lambda _: self._status_now(),
                                    last=started_with).start()
        subscribe = getattr(self.transport, "subscribe", None)
        if subscribe is not None:  # before start(): the subscription is made on (every) connect
            subscribe(self.updater.topic, self.updater.on_message)
        self.receipts = self._receipt_listener(subscribe)
        self.publisher = Publisher(self.outbox, self.transport, cfg.mqtt.max_inflight, confirm=cfg.mqtt.confirm,
                                   resend_s=(cfg.mqtt.receipt_timeout_s, RESEND_S[1])).start()
        self.grid = GridLayer.from_geojson(cfg.grid_geojson) if cfg.grid_geojson else None
        self.examples = example_store(cfg.hard_examples)
        self.resume = ResumeState.load(state_path(cfg))  # read last: a start that fails before keeps the file
        for cam in cfg.cameras:
            self.stats[cam.id] = CameraStats()
            t = threading.Thread(target=self._camera_loop, args=(cam,), name=f"camera-{cam.id}", daemon=True)
            self._threads.append(t)
            t.start()
        threading.Thread(target=self._heartbeat, name="status", daemon=True).start()
        log.info("edge worker %s started: %d camera(s), run %s", cfg.gateway_id, len(cfg.cameras), self.run_id)
        return self

    def _receipt_listener(self, subscribe: Callable[..., None] | None) -> ReceiptListener | None:
        """`mqtt.confirm: receipt`: rows wait for central's receipts on the gateway's own receipt topic.
        `puback`: the explicit fallback for a central that sends none; said at every start, with its risk."""
        m = self.cfg.mqtt
        if m.confirm == "puback":
            log.warning("mqtt.confirm is 'puback': outbox rows are deleted on the broker's PUBACK, not on central's "
                        "receipt; a broker crash can lose events it acknowledged but had not saved")
            return None
        if subscribe is None:
            raise ConfigError("mqtt.confirm 'receipt' needs a transport that can subscribe to receipts; "
                                  "set mqtt.confirm: puback for this transport")
        listener = ReceiptListener(receipt_topic(m.prefix, self.cfg.site_id, self.cfg.gateway_id), self.outbox)
        subscribe(listener.topic, listener.on_message)
        log.info("outbox rows are deleted on central's receipt (%s); resent after %.0f s without one",
                 listener.topic, m.receipt_timeout_s)
        return listener

    def _mqtt_transport(self) -> MqttTransport:
        m = self.cfg.mqtt
        url = BrokerURL.parse(self.broker or m.broker)
        if m.username and not url.username:
            password = expand(m.password, "mqtt.password") if m.password else None
            url = BrokerURL(url.host, url.port, url.tls, m.username, password)
        will = Will(self._status_topic(), json.dumps({"state": "offline", "gateway_id": self.cfg.gateway_id}).encode())
        client_id = f"gridwatch-edge-{self.cfg.site_id}-{self.cfg.gateway_id}"
        return MqttTransport(url, client_id, m.protocol, will=will, keepalive_s=m.keepalive_s,
                             max_inflight=m.max_inflight, ca_file=str(m.ca_file) if m.ca_file else None)

    def _status_topic(self) -> str:
        return status_topic(self.cfg.mqtt.prefix, self.cfg.site_id, self.cfg.gateway_id)

    # cameras ----------------------------------------------------------------------------------------------
    def _camera_loop(self, cam: CameraConfig) -> None:
        stats = self.stats[cam.id]
        while not self._stop.is_set() and stats.restarts <= self.max_restarts:
            try:
                self._run_camera(cam, stats)
                return
            except Exception:
                stats.errors += 1
                stats.restarts += 1
                log.exception("camera %s failed (restart %d of %d)", cam.id, stats.restarts, self.max_restarts)
                self._stop.wait(min(30.0, 2.0**stats.restarts))

    def _run_camera(self, cam: CameraConfig, stats: CameraStats) -> None:
        assert self.detector is not None, "start() loads the detectors"
        pipeline = CameraPipeline(self.cfg.site_id, self.cfg.gateway_id, cam, self.detector, grid=self.grid,
                                  jpeg_quality=self.cfg.evidence.jpeg_quality, restored=self.resume.take(cam.id))
        source = open_source(cam.source, cam.id, self.start_wall or datetime.now(timezone.utc), cam.analysis_fps,
                             stop=self._stop)
        outbox_sink = OutboxSink(self.outbox, self.publisher, self.cfg.mqtt.prefix, self.cfg.evidence.dir,
                                 self.cfg.evidence.publish, lock=self._emit_lock)
        sinks: list[Sink] = [outbox_sink, StatsSink(stats, source), ResumeSink(self.resume, cam.id, pipeline.export),
                             self.recent.sink()]
        hard = hard_example_sink(self.cfg.hard_examples, self.examples, self.cfg.site_id, self.cfg.gateway_id,
                                 pipeline.detectors.infos())
        if hard is not None:
            sinks.append(hard)
        if self.on_emitted:
            sinks.append(CallbackSink(self.on_emitted))
        if self.extra_sinks:
            sinks.extend(self.extra_sinks(cam, source))
        try:
            report = run_camera(source, pipeline, sinks, self._stop)
        finally:
            stats.events += outbox_sink.events
            self.resume.keep(cam.id, pipeline.export())  # a restarted camera thread continues them too
        self.reports[cam.id] = report
        log.info("camera %s ended (%s): %d of %s frames decoded, %d analysed, %d events", cam.id, report.end_reason,
                 report.frames_decoded, report.frames_expected or "?", report.frames_analysed, report.events)

    # health -----------------------------------------------------------------------------------------------
    def _updatable_detectors(
        self, cfg: SiteConfig
    ) -> tuple[SwappableDetector, Detector | DetectorSet, dict[str, Any] | None]:
        """The site's detectors with the one a model update replaces (the `detector:` section, else the first named
        one) wrapped in a `SwappableDetector` and started on the installed update if there is one; an injected
        single detector (tests) is wrapped as it is."""
        loaded = self.detector if self.detector is not None else load_detectors(cfg)
        if not isinstance(loaded, Mapping):
            swappable = SwappableDetector(loaded)
            return swappable, swappable, None
        name = updatable_name(cfg) if self.detector is None else next(iter(loaded))
        base, started_with = loaded[name], None
        if self.detector is None:
            base, started_with = startup_detector(cfg, base)  # the installed model update, if any
        swappable = SwappableDetector(base)
        return swappable, {**loaded, name: swappable}, started_with

    def health(self) -> dict[str, Any]:
        info = self.swappable.current.info
        return {
            "state": "online",
            "gateway_id": self.cfg.gateway_id,
            "site_id": self.cfg.site_id,
            "host": socket.gethostname(),
            "run_id": self.run_id,
            "at": datetime.now(timezone.utc).isoformat(),
            "outbox_pending": len(self.outbox),
            "outbox_awaiting_receipt": self.outbox.counts()["published"],
            "outbox_dropped": self.outbox.dropped,
            "published": self.publisher.stats.published,
            "acked": self.publisher.stats.acked,
            "resent": self.publisher.stats.resent,
            "confirm": self.cfg.mqtt.confirm,
            "receipts": None if self.receipts is None else self.receipts.stats.__dict__,
            "cameras": {cid: s.__dict__ for cid, s in self.stats.items()},
            "hard_examples": None if self.examples is None else {"saved": self.examples.saved,
                                                                 "deleted": self.examples.deleted},
            "model": {"name": info.name, "version": info.version, "sha256": info.sha256,
                      "on_probation": self.swappable.on_probation},
            "model_update": self.updater.last,
        }

    def publish_status(self) -> bool:
        """The retained status now (the heartbeat repeats it every 30 s): after a model update, say so at once.
        False when not connected (the heartbeat then retries within a second)."""
        assert self.transport is not None
        with self._status_lock:
            mid = self.transport.publish(self._status_topic(), json.dumps(self.health()).encode(), {}, retain=True)
        return mid is not None

    def _status_now(self) -> None:
        self.publish_status()

    def _heartbeat(self) -> None:
        warned = False
        while not self._stop.is_set():
            sent = self.publish_status()
            if not warned and self._no_receipts_yet():
                warned = True
                log.warning("the broker acknowledged rows but no receipt has come from central yet: central is down "
                            "or far behind, or older than receipts (then set mqtt.confirm: puback, accepting that a "
                            "broker crash can lose acknowledged events)")
            self._stop.wait(30.0 if sent else 1.0)

    def _no_receipts_yet(self) -> bool:
        """Rows were acknowledged by the broker a while ago and central has not sent a single receipt."""
        r, waited = self.receipts, time.monotonic() - self._started
        return (r is not None and r.stats.messages == 0 and self.publisher.stats.acked > 0
                and waited > 2 * self.cfg.mqtt.receipt_timeout_s)

    # lifecycle --------------------------------------------------------------------------------------------
    def cameras_done(self) -> bool:
        return all(not t.is_alive() for t in self._threads)

    def wait(self, max_seconds: float | None = None) -> None:
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while not self.cameras_done() and not self._stop.is_set():
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.1)

    def stop(self, drain_s: float = DRAIN_S, join_s: float = CAMERA_JOIN_S) -> bool:
        """Stop cameras (their open incidents end), drain the outbox for at most `drain_s`, say offline. Every
        wait is bounded: `join_s` for the cameras together, `drain_s`, `PUBLISHER_JOIN_S` (`STOP_BUDGET_S`).

        True if fully drained; otherwise the rows stay in the outbox file for the next start."""
        self._stop.set()
        deadline = time.monotonic() + join_s
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.warning("%s did not stop within %.0f s; its last events may be missing", t.name, join_s)
        self.resume.save()
        self.updater.stop()
        drained = self.publisher.drain(drain_s)
        assert self.transport is not None
        offline = json.dumps({"state": "offline", "gateway_id": self.cfg.gateway_id}).encode()
        self.transport.publish(self._status_topic(), offline, {}, retain=True)  # the Last Will covers a miss
        self.pending = len(self.outbox)
        self.publisher.stop(join_s=PUBLISHER_JOIN_S)
        self.outbox.close()
        return drained


def run_worker(cfg: SiteConfig, broker: str | None = None, max_seconds: float | None = None,
               detector: Detector | DetectorSet | None = None) -> int:
    """Run until SIGTERM/SIGINT, every camera ends, or `max_seconds` (counted from the call, start-up included).

    Returns 0 when the outbox drained, 1 when rows were kept for the next start (they are not lost, but a
    supervisor or a test should know that delivery is unfinished). `detector` replaces the configured one (tests)."""
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker = EdgeWorker(cfg, broker=broker, detector=detector).start()
        while not stop.is_set() and not worker.cameras_done():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            stop.wait(0.2 if left is None else min(0.2, left))
        t0 = time.monotonic()
        log.info("edge worker stopping (waits bounded by %.1f s)", STOP_BUDGET_S)
        drained = worker.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if drained:
        log.info("edge worker stopped in %.1f s; outbox drained", time.monotonic() - t0)
        return 0
    log.warning("edge worker stopped in %.1f s; outbox kept %d pending row(s) for the next start",
                time.monotonic() - t0, worker.pending)
    return 1
