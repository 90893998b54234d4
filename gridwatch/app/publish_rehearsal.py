"""A rehearsal of `gridwatch models publish` against a real worker: what the model-publish e2e test and
`benchmarks/retrain_e2e.py` both need.

* `demo_worker_config`: the demo site (generated demo clip, looping at real time like a live camera) trusting a
  model-signing key, with short warm-up and probation so a swap is judged within seconds;
* `IncidentWatch`: every incident message on the broker, with the model version that produced it;
* `control_messages`: a release's offer and chunks, signed or not; `corrupted`: one chunk damaged in transit
(poll for what follows with `gridwatch.app.poll.wait_until`).

Example::

    with MosquittoBroker() as broker:
        cfg = demo_worker_config(clip_dir, work, trusted_public_key_text)
        worker = EdgeWorker(cfg, broker=broker.url).start()
        watch = IncidentWatch(broker.url, cfg.mqtt.topic_prefix)
        assert wait_until(lambda: len(watch.since(0)) >= 2, 90)
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch.app.demo import site_config
from gridwatch.edge.config import SiteConfig
from gridwatch.wire.model_signing import sign
from gridwatch.wire.model_update import ModelBundle, new_transfer_id, offer_for, statement_for, transfer_messages
from gridwatch.wire.mqtt import BrokerURL
from gridwatch.wire.topics import edge_filter

PREFIX = "gridwatch/v1"




def demo_worker_config(clip_dir: Path, work: Path, trusted: str, min_detection_ratio: float | None = None,
                       ) -> SiteConfig:
    """The demo site on the generated clip in `clip_dir` (looping, real time), trusting the public key `trusted`.
    `min_detection_ratio`: the update gate's threshold (None: the shipped default)."""
    truth = json.loads((clip_dir / "truth.json").read_text())
    work.mkdir(parents=True, exist_ok=True)
    cfg, _ = site_config(truth, clip_dir / "video.mp4", work)
    cam = cfg.cameras[0]
    cam = cam.model_copy(update={"source": cam.source.model_copy(update={"loop": True, "realtime": True})})
    update: dict[str, Any] = {"trusted_keys": [trusted], "compare_frames": 8, "probation_frames": 15,
                              "probation_every": 3}
    if min_detection_ratio is not None:
        update["min_detection_ratio"] = min_detection_ratio
    return cfg.model_copy(update={"cameras": [cam], "model_update": cfg.model_update.model_copy(update=update)})


class IncidentWatch:
    """Every incident message on the broker under `prefix`, as (arrival time, model version, type, phase)."""

    def __init__(self, url: str, prefix: str = PREFIX, client_id: str = "incident-watch") -> None:
        b = BrokerURL.parse(url)
        self.seen: list[tuple[float, str, str, str]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(edge_filter(prefix, "incident"), qos=1)
        self.client.connect(b.host, b.port)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        event = json.loads(msg.payload)
        with self._lock:
            self.seen.append((time.monotonic(), event["model"]["version"], event["type"], event["phase"]))

    def since(self, t0: float, version: str | None = None) -> list[tuple[float, str, str, str]]:
        """Messages that arrived at or after monotonic time `t0` (from `version` only, when given)."""
        with self._lock:
            return [e for e in self.seen if e[0] >= t0 and (version is None or e[1] == version)]

    def by_version(self) -> dict[str, dict[str, int]]:
        """Counts of "type phase" per model version, over everything seen."""
        out: dict[str, dict[str, int]] = {}
        for _, version, kind, phase in self.since(0):
            counts = out.setdefault(version, {})
            counts[f"{kind} {phase}"] = counts.get(f"{kind} {phase}", 0) + 1
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client.on_message = self.client.on_connect = None


def control_messages(bundle: ModelBundle, site: str, gateway: str, key: Ed25519PrivateKey | None, *,
                     chunk_size: int = 64 * 1024, issued_ms: int | None = None,
                     transfer_id: str | None = None) -> list[bytes]:
    """The offer and chunks of `bundle` for one gateway, signed with `key` (unsigned when None)."""
    issued = int(time.time() * 1000) if issued_ms is None else issued_ms
    st = statement_for(bundle, site, gateway, transfer_id or new_transfer_id(), issued)
    sig, kid = sign(key, st.canonical()) if key is not None else (None, None)
    return list(transfer_messages(bundle, offer_for(bundle, st, sig, kid, chunk_size)))


class TooSmallToCorrupt(ValueError):
    """The release fits in fewer chunks than a mid-transfer corruption needs."""


def corrupted(messages: list[bytes], index: int | None = None) -> list[bytes]:
    """A copy of `messages` with the last 10 bytes of one chunk zeroed (default: the middle message)."""
    if len(messages) < 3:
        raise TooSmallToCorrupt(f"{len(messages)} messages: need an offer and at least two chunks; use smaller chunks")
    i = len(messages) // 2 if index is None else index
    if not 0 < i < len(messages):
        raise TooSmallToCorrupt(f"message {i} is not a chunk (1..{len(messages) - 1})")
    out = list(messages)
    out[i] = out[i][:-10] + bytes(10)
    return out
