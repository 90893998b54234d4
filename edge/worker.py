"""The gateway worker: the composition root of the edge.

Start order: outbox -> publisher (transport) -> detector -> one thread per camera -> status heartbeat.
Stop order is the reverse: cameras stop reading, each camera's open incidents are ended (`flush`, reason
`shutdown`) and kept in the resume state file (`edge.resume`) so the next start continues them, the publisher
drains the outbox for a bounded time, the retained status says `offline`. Anything not yet acknowledged stays in
the outbox file for the next start.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gridwatch.calibration.grid import GridLayer
from gridwatch.edge.camera import CameraPipeline, Emitted, FrameResult
from gridwatch.edge.config import CameraConfig, SiteConfig
from gridwatch.edge.evidence import save_snapshot
from gridwatch.edge.resume import ResumeState, state_path, stop_reason
from gridwatch.edge.sources import open_source
from gridwatch.models.base import Detector
from gridwatch.models.registry import load_detector
from gridwatch.wire.mqtt import BrokerURL
from gridwatch.wire.outbox import Outbox
from gridwatch.wire.publisher import MqttTransport, Publisher, Transport, Will
from gridwatch.wire.topics import evidence_topic, incident_topic, status_topic

log = logging.getLogger(__name__)


@dataclass
class CameraStats:
    frames: int = 0
    analysed: int = 0
    events: int = 0
    errors: int = 0
    restarts: int = 0


@dataclass
class EdgeWorker:
    cfg: SiteConfig
    broker: str | None = None
    detector: Detector | None = None
    transport: Transport | None = None
    start_wall: datetime | None = None
    on_emitted: Callable[[Emitted], None] | None = None
    on_result: Callable[[CameraPipeline, FrameResult], None] | None = None
    max_restarts: int = 5
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    stats: dict[str, CameraStats] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _emit_lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> EdgeWorker:
        cfg = self.cfg
        self.outbox = Outbox(cfg.outbox.path, cfg.outbox.max_rows)
        self.transport = self.transport or self._mqtt_transport()
        self.publisher = Publisher(self.outbox, self.transport, cfg.mqtt.max_inflight).start()
        self.detector = self.detector or load_detector(cfg.detector, site=cfg)
        self.grid = GridLayer.from_geojson(cfg.grid_geojson) if cfg.grid_geojson else None
        self.resume = ResumeState.load(state_path(cfg))  # read last: a start that fails before keeps the file
        for cam in cfg.cameras:
            self.stats[cam.id] = CameraStats()
            t = threading.Thread(target=self._camera_loop, args=(cam,), name=f"camera-{cam.id}", daemon=True)
            self._threads.append(t)
            t.start()
        threading.Thread(target=self._heartbeat, name="status", daemon=True).start()
        log.info("edge worker %s started: %d camera(s), run %s", cfg.gateway_id, len(cfg.cameras), self.run_id)
        return self

    def _mqtt_transport(self) -> MqttTransport:
        m = self.cfg.mqtt
        url = BrokerURL.parse(self.broker or m.broker)
        if m.username and not url.username:
            url = BrokerURL(url.host, url.port, url.tls, m.username, m.password)
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
        assert self.detector is not None
        pipeline = CameraPipeline(self.cfg.site_id, self.cfg.gateway_id, cam, self.detector, grid=self.grid,
                                  jpeg_quality=self.cfg.evidence.jpeg_quality, restored=self.resume.take(cam.id))
        source = open_source(cam.source, cam.id, self.start_wall or datetime.now(timezone.utc), cam.analysis_fps)
        failed = True
        try:
            for frame in source:
                stats.frames = frame.index + 1
                if self._stop.is_set():
                    break
                result = pipeline.process(frame)
                if result is not None:
                    stats.analysed += 1
                    self._emit(result.emitted, stats)
                    if self.on_result:
                        self.on_result(pipeline, result)
            failed = False
        finally:
            self._emit(pipeline.flush(stop_reason(source, stopping=self._stop.is_set(), failed=failed)), stats)
            self.resume.keep(cam.id, pipeline.export())
            stop = getattr(source, "stop", None)
            if callable(stop):
                stop()

    def _emit(self, emitted: list[Emitted], stats: CameraStats) -> None:
        prefix = self.cfg.mqtt.prefix
        for item in emitted:
            ev = item.event
            with self._emit_lock:
                self.outbox.put("incident", incident_topic(prefix, ev.site_id, ev.camera_id), ev.to_json().encode())
                if item.snapshot is not None:
                    save_snapshot(item.snapshot, self.cfg.evidence.dir, ev.incident_id)
                    if self.cfg.evidence.publish:
                        props = {"content_type": "image/jpeg", "incident_id": ev.incident_id,
                                 "event_id": str(ev.event_id), "sha256": item.snapshot.ref.sha256}
                        self.outbox.put("evidence", evidence_topic(prefix, ev.site_id, ev.camera_id),
                                        item.snapshot.jpeg, props)
            stats.events += 1
            self.publisher.notify()
            if self.on_emitted:
                self.on_emitted(item)

    # health -----------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return {
            "state": "online",
            "gateway_id": self.cfg.gateway_id,
            "site_id": self.cfg.site_id,
            "host": socket.gethostname(),
            "run_id": self.run_id,
            "at": datetime.now(timezone.utc).isoformat(),
            "outbox_pending": len(self.outbox),
            "outbox_dropped": self.outbox.dropped,
            "published": self.publisher.stats.published,
            "acked": self.publisher.stats.acked,
            "cameras": {cid: s.__dict__ for cid, s in self.stats.items()},
        }

    def _heartbeat(self) -> None:
        while not self._stop.is_set():
            assert self.transport is not None
            self.transport.publish(self._status_topic(), json.dumps(self.health()).encode(), {}, retain=True)
            self._stop.wait(30.0)

    # lifecycle --------------------------------------------------------------------------------------------
    def cameras_done(self) -> bool:
        return all(not t.is_alive() for t in self._threads)

    def wait(self, max_seconds: float | None = None) -> None:
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while not self.cameras_done() and not self._stop.is_set():
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.1)

    def stop(self, drain_s: float = 10.0) -> bool:
        """Stop cameras (their open incidents end), drain the outbox, say offline. True if fully drained."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self.resume.save()
        drained = self.publisher.drain(drain_s)
        assert self.transport is not None
        offline = json.dumps({"state": "offline", "gateway_id": self.cfg.gateway_id}).encode()
        self.transport.publish(self._status_topic(), offline, {}, retain=True)
        time.sleep(0.2)
        self.publisher.stop()
        self.outbox.close()
        return drained


def run_worker(cfg: SiteConfig, broker: str | None = None, max_seconds: float | None = None) -> int:
    worker = EdgeWorker(cfg, broker=broker).start()
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    while not stop.is_set() and not worker.cameras_done():
        if deadline is not None and time.monotonic() > deadline:
            break
        stop.wait(0.5)
    drained = worker.stop()
    log.info("edge worker stopped; outbox %s", "drained" if drained else "kept pending rows for the next start")
    return 0
