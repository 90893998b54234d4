"""Model updates on a running gateway: receive, verify, compare, swap, persist, report, roll back.

The worker subscribes to its control topic and hands every message to `ModelUpdater.on_message` (on the MQTT
network thread: it only parses and writes a chunk to the staging file). A completed transfer is installed on the
updater's own thread, so the cameras never wait:

1. the reassembled file's sha256 and the signed offer were checked by `edge.model_receiver`;
2. the model is loaded like the configured one (same `conf`, `iou`, `classes`, `threads`, class checks against
   the site's rules; sha256 verified against its manifest again); a failure refuses it;
3. it is warmed up and run, with the running model, on the recent analysed frames (`model_update.compare_frames`);
   if it finds fewer than `min_detection_ratio` (0.3) times the running model's detections it is refused;
4. it becomes the active model in `model-updates/active.json` (a restart runs it), then the cameras' detector is
   swapped between two frames (`edge.model_swap`);
5. probation: for `probation_frames` live frames the previous model shadow-runs one frame in `probation_every`;
   a collapse, or the new model raising, swaps the previous model back and records it as active again.

Every outcome (installed, unchanged, refused, rolled back) is reported through `on_outcome` and kept in `last`,
which the worker publishes in its retained status with the running model's name, version and sha256.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch.edge.config import SiteConfig
from gridwatch.edge.model_receiver import Complete, Receiver, Refused
from gridwatch.edge.model_store import InstalledModel, ModelStore, StoreState
from gridwatch.edge.model_swap import Probation, RecentFrames, SwappableDetector, Verdict, count_on, judge
from gridwatch.models.base import Detector, ModelError
from gridwatch.models.registry import OnnxDetectorSpec, load_detector
from gridwatch.wire.model_signing import PublicKey, parse_public_key

log = logging.getLogger(__name__)

WARMUP_IMAGE = np.full((360, 640, 3), 114, dtype=np.uint8)


def store_root(cfg: SiteConfig) -> Path:
    return cfg.model_update.dir or cfg.outbox.path.parent / "model-updates"


def trusted_keys(cfg: SiteConfig) -> dict[str, PublicKey]:
    keys = [parse_public_key(text) for text in cfg.model_update.trusted_keys]
    return {k.key_id: k for k in keys}


def updatable_name(cfg: SiteConfig) -> str:
    """The detector a model update replaces: the `detector:` section ('default'), else the first of `detectors:`.
    Other named detectors keep their configured model."""
    return next(iter(cfg.detector_specs()))


def spec_for(cfg: SiteConfig, model: InstalledModel | Path, manifest: Path | None = None) -> OnnxDetectorSpec:
    """The updatable detector's configured settings (thresholds, classes, renames, TTA) with another ONNX model
    (published models are ONNX, always verified)."""
    d = cfg.detector_specs()[updatable_name(cfg)]
    path, mpath = (model.model, model.manifest) if isinstance(model, InstalledModel) else (model, manifest)
    providers = getattr(d, "providers", ["CPUExecutionProvider"])
    return OnnxDetectorSpec(type="onnx", model=path, manifest=mpath, conf=d.conf, iou=d.iou, classes=d.classes,
                            threads=d.threads, verify_sha256=True, providers=providers, tta=d.tta,
                            rename=dict(d.rename))


def startup_detector(cfg: SiteConfig, configured: Detector) -> tuple[Detector, dict[str, Any] | None]:
    """The detector to start with: the installed model recorded in active.json, else `configured`.

    A recorded model that no longer loads (file damaged, deleted, classes now missing) is dropped from active.json
    and the configured model runs; the second value is then the outcome to report."""
    store = ModelStore(store_root(cfg))
    state = store.load()
    if state.active is not None:
        try:
            return load_detector(spec_for(cfg, state.active), site=cfg), None
        except ModelError as exc:
            log.error("installed model %s %s does not load (%s); running the configured model", state.active.name,
                      state.active.version, exc)
            store.save(StoreState(last_issued_ms=state.last_issued_ms))
            return configured, outcome(
                "rolled_back", state.active.transfer_id, f"installed model failed to load at start: {exc}",
                state.active.name, state.active.version, state.active.sha256)
    return configured, None


def outcome(result: str, transfer_id: str | None, reason: str, name: str | None = None,
            version: str | None = None, sha256: str | None = None) -> dict[str, Any]:
    return {"result": result, "transfer_id": transfer_id, "reason": reason[:500], "name": name, "version": version,
            "sha256": sha256, "at": datetime.now(timezone.utc).isoformat()}


@dataclass
class ModelUpdater:
    cfg: SiteConfig
    detector: SwappableDetector
    recent: RecentFrames
    on_outcome: Callable[[dict[str, Any]], None]
    last: dict[str, Any] | None = None
    clock: Callable[[], float] = time.monotonic
    loader: Callable[[OnnxDetectorSpec, SiteConfig], Detector] = lambda spec, cfg: load_detector(spec, site=cfg)

    def __post_init__(self) -> None:
        mu = self.cfg.model_update
        self.store = ModelStore(store_root(self.cfg))
        self.receiver = Receiver(self.cfg.mqtt.prefix, self.cfg.site_id, self.cfg.gateway_id, self.store.staging,
                                 trusted_keys(self.cfg), int(mu.max_model_mb * 1024 * 1024), mu.transfer_timeout_s,
                                 self.clock, last_issued_ms=self.store.load().last_issued_ms)
        self._lock = threading.Lock()
        self._work: queue.Queue[Complete | Verdict | None] = queue.Queue(maxsize=8)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-update", daemon=True)

    @property
    def topic(self) -> str:
        return self.receiver.topic

    def start(self) -> ModelUpdater:
        self._thread.start()
        return self

    def stop(self, join_s: float = 1.0) -> None:
        """Bounded by `join_s` (the worker's stop budget): an install that is still loading or comparing is not
        waited for; it may finish on the daemon thread while the process exits (it was verified by then), and a
        transfer cut short leaves only staging files, cleared at the next start."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._work.put_nowait(None)
        self._thread.join(timeout=join_s)
        with self._lock:
            self.receiver.close()

    # MQTT network thread ----------------------------------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes) -> None:
        with self._lock:
            result = self.receiver.on_message(topic, payload)
        if isinstance(result, Refused):
            self._report(outcome("refused", result.transfer_id, result.reason))
        elif isinstance(result, Complete):
            try:
                self._work.put_nowait(result)
            except queue.Full:
                self._report(outcome("refused", result.offer.transfer_id, "busy: too many models waiting to install"))

    # updater thread ---------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                item = self._work.get(timeout=1.0)
            except queue.Empty:
                self._expire()
                continue
            if item is None:
                return
            try:
                if isinstance(item, Verdict):
                    self._probation_over(item)
                else:
                    self.install(item)
            except Exception as exc:  # the updater must survive anything a model does
                log.exception("model update failed")
                tid = item.offer.transfer_id if isinstance(item, Complete) else None
                self._report(outcome("refused", tid, f"install failed: {type(exc).__name__}: {exc}"))

    def _expire(self) -> None:
        with self._lock:
            refused = self.receiver.expire(self.clock())
        if refused is not None:
            self._report(outcome("refused", refused.transfer_id, refused.reason))

    def install(self, done: Complete) -> None:
        st, tid = done.offer.statement, done.offer.transfer_id
        ident = (st.name, st.version, st.model_sha256)
        running = self.detector.current.info
        if (running.name, running.version, running.sha256) == ident:
            self._discard(done)
            self._report(outcome("unchanged", tid, "this model is already running", *ident))
            return
        try:
            candidate = self.loader(spec_for(self.cfg, done.model_path, done.manifest_path), self.cfg)
        except ModelError as exc:
            self._discard(done)
            self._report(outcome("refused", tid, f"failed to load: {exc}", *ident))
            return
        verdict = self._compare(candidate)
        if not verdict.ok:
            self._discard(done)
            self._report(outcome("refused", tid, verdict.reason, *ident))
            return
        installed = self.store.install(done.model_path, done.manifest_path, st.name, st.version, st.model_sha256, tid)
        state = self.store.load()
        self.store.save(StoreState(active=installed, previous=state.active, last_issued_ms=st.issued_at_ms))
        with self._lock:
            self.receiver.last_issued_ms = st.issued_at_ms
        self.detector.swap(candidate, self._probation(candidate))
        self._report(outcome("installed", tid, verdict.reason, *ident))

    def _compare(self, candidate: Detector) -> Verdict:
        images = self.recent.snapshot()
        candidate.detect(images[-1] if images else WARMUP_IMAGE)  # warm-up: the first run allocates and is slow
        running = self.detector.current
        return judge(count_on(running, images), count_on(candidate, images), len(images),
                     self.cfg.model_update.min_detection_ratio)

    def _probation(self, candidate: Detector) -> Probation | None:
        mu = self.cfg.model_update
        if mu.probation_frames == 0:
            return None
        return Probation(candidate, self.detector.current, mu.probation_frames, mu.probation_every,
                         mu.min_detection_ratio, on_end=self._on_probation_end)

    def _on_probation_end(self, verdict: Verdict) -> None:
        """On a camera thread: hand the bookkeeping to the updater thread."""
        try:
            self._work.put_nowait(verdict)
        except queue.Full:
            log.error("model-update queue full; probation verdict not recorded: %s", verdict.reason)

    def _probation_over(self, verdict: Verdict) -> None:
        state = self.store.load()
        if verdict.ok:
            log.info("probation passed: %s", verdict.reason)
            return
        current = state.active
        self.store.save(StoreState(active=state.previous, previous=None, last_issued_ms=state.last_issued_ms))
        info = self.detector.current.info
        self._report(outcome("rolled_back", current.transfer_id if current else None,
                             f"{verdict.reason}; running {info.name} {info.version} again",
                             *((current.name, current.version, current.sha256) if current else ())))

    def _discard(self, done: Complete) -> None:
        done.model_path.unlink(missing_ok=True)
        done.manifest_path.unlink(missing_ok=True)

    def _report(self, result: dict[str, Any]) -> None:
        self.last = result
        log.log(logging.INFO if result["result"] in ("installed", "unchanged") else logging.WARNING,
                "model update %s: %s %s", result["transfer_id"], result["result"], result["reason"])
        self.on_outcome(result)
