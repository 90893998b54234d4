"""Publishing a model to a running edge worker over a real Mosquitto broker (issue 7, "Ship to gateways").

A real worker runs the demo model on a generated street clip (looping, paced like a live camera) and publishes
incidents. Over its control topic it then gets: the repackaged demo model with one chunk corrupted in transit, the
same model unsigned, and finally the genuine signed copy (new version) through `gridwatch models publish`. The
first two are refused with their reasons on the retained status and the old model keeps running; the third is
swapped in without stopping the camera, reported on the status, stamped on the incident updates that follow, and
still running after a restart.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridwatch.app.broker import MosquittoBroker
from gridwatch.app.demo import SCENARIO
from gridwatch.app.poll import wait_until
from gridwatch.app.publish_rehearsal import (
    PREFIX,
    IncidentWatch,
    control_messages,
    corrupted,
    demo_worker_config,
)
from gridwatch.central.model_publish import MqttControlChannel
from gridwatch.edge.config import SiteConfig
from gridwatch.edge.worker import EdgeWorker
from gridwatch.synth.generate import generate
from gridwatch.wire.model_signing import generate as keygen
from gridwatch.wire.model_signing import load_private_key
from gridwatch.wire.model_update import parse_control
from gridwatch.wire.mqtt import BrokerURL
from gridwatch.wire.topics import control_topic
from tests.model_updates import repackaged_demo

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-clip")
    generate(SCENARIO, out)
    return out


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, str]:
    key_path, _, public = keygen(tmp_path / "keys" / "models")
    return key_path, public.text


@pytest.fixture
def broker() -> Iterator[str]:
    with MosquittoBroker() as b:
        yield b.url


def test_a_published_model_replaces_the_running_one_and_bad_ones_are_refused(
    demo_clip: Path, broker: str, tmp_path: Path, keys: tuple[Path, str],
) -> None:
    url, cfg = broker, demo_worker_config(demo_clip, tmp_path, keys[1])
    worker = EdgeWorker(cfg, broker=url).start()
    try:
        publish_while_running(worker, url, cfg, tmp_path, keys[0])
    finally:
        worker.stop(drain_s=2)
    again = EdgeWorker(cfg, broker=url).start()  # a restart keeps the choice
    try:
        assert again.health()["model"]["version"] == "0.2.0"
    finally:
        again.stop(drain_s=1)


def publish_while_running(worker: EdgeWorker, url: str, cfg: SiteConfig, tmp_path: Path, key_path: Path) -> None:
    site, gw = cfg.site_id, cfg.gateway_id
    old_version = worker.health()["model"]["version"]
    bundle = repackaged_demo(tmp_path / "release", version="0.2.0")
    key = load_private_key(key_path)
    incidents = IncidentWatch(url, PREFIX)
    try:
        with MqttControlChannel(BrokerURL.parse(url), PREFIX, site, [gw]) as channel:
            def update_of(tid: str) -> dict[str, Any] | None:
                update = (channel.status(gw) or {}).get("model_update") or {}
                return update if update.get("transfer_id") == tid else None

            assert wait_until(lambda: len(incidents.since(0)) >= 2, 90), "the worker produced no incidents"
            topic = control_topic(PREFIX, site, gw)

            # 1. one chunk corrupted in transit: refused on the whole-file hash
            damaged = corrupted(control_messages(bundle, site, gw, key, chunk_size=256 * 1024), 5)
            channel.send(topic, damaged)
            tid = parse_control(damaged[0])[0].transfer_id
            assert channel.wait(lambda: update_of(tid) is not None, 30), channel.status(gw)
            assert update_of(tid)["result"] == "refused" and "corrupted" in update_of(tid)["reason"]  # type: ignore[index]

            # 2. unsigned: refused at the offer
            unsigned = control_messages(bundle, site, gw, None, chunk_size=256 * 1024)
            channel.send(topic, unsigned)
            tid = parse_control(unsigned[0])[0].transfer_id
            assert channel.wait(lambda: update_of(tid) is not None, 30), channel.status(gw)
            assert update_of(tid)["result"] == "refused" and "unsigned" in update_of(tid)["reason"]  # type: ignore[index]
            assert channel.status(gw)["model"]["version"] == old_version  # type: ignore[index]
            t_refused = time.monotonic()
            assert wait_until(lambda: incidents.since(t_refused, old_version), 60), \
                "the old model stopped producing incidents after the refusals"

        # 3. the genuine model through the CLI, staged (one gateway: the stage is the whole rollout)
        t_publish = time.monotonic()
        env = {**os.environ, "GRIDWATCH_CENTRAL_BROKER": url, "GRIDWATCH_MODEL_KEY": str(key_path)}
        cli = [sys.executable, "-m", "gridwatch.app.cli", "models", "publish", str(tmp_path / "release")]
        proc = subprocess.run([*cli, "--site", site, "--gateways", gw, "--staged", "--timeout", "120"],
                              capture_output=True, text=True, timeout=180, env=env, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        print(proc.stdout)  # the per-gateway table, with the seconds from first chunk to "installed" (pytest -s)
        assert "installed" in proc.stdout
        health = worker.health()
        assert (health["model"]["version"], health["model"]["sha256"]) == ("0.2.0", bundle.sha256)
        assert all(s.restarts == 0 for s in worker.stats.values()), "a camera restarted during the swap"
        assert wait_until(lambda: incidents.since(t_publish, "0.2.0"), 60), \
            f"no incident message from the new model: {incidents.since(t_publish)[-5:]}"
        t_swapped = max(e[0] for e in incidents.since(t_publish, "0.2.0"))
        assert wait_until(lambda: len(incidents.since(t_swapped + 0.01)) >= 1, 60), "incidents stopped after the swap"
        assert wait_until(lambda: not worker.swappable.on_probation, 60), "probation never ended"
        assert worker.health()["model"]["version"] == "0.2.0", worker.health()["model_update"]
    finally:
        incidents.close()
