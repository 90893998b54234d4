"""Edge worker -> real Mosquitto -> central service -> SQLite cases, on a real clip with a real ONNX model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridwatch.app.broker import MosquittoBroker, free_port
from gridwatch.central.service import CentralService
from gridwatch.central.views import cases_as_rows
from gridwatch.edge.camera import Emitted
from gridwatch.edge.config import SiteConfig
from gridwatch.edge.worker import EdgeWorker
from tests.conftest import load_fixture_config

pytestmark = [pytest.mark.e2e, pytest.mark.realdata]


def arlington(shared: Path, tmp: Path, protocol: str = "5") -> SiteConfig:
    cfg = load_fixture_config("arlington.yaml", shared)
    return cfg.model_copy(update={
        "mqtt": cfg.mqtt.model_copy(update={"protocol": protocol}),
        "outbox": cfg.outbox.model_copy(update={"path": tmp / "outbox.db"}),
        "evidence": cfg.evidence.model_copy(update={"dir": tmp / "evidence"}),
    })


def run_edge(cfg: SiteConfig, url: str, drain_s: float = 20.0) -> tuple[EdgeWorker, list[str], bool]:
    emitted: list[str] = []
    worker = EdgeWorker(cfg, broker=url, on_emitted=lambda e: emitted.append(e.event.phase)).start()
    worker.wait(max_seconds=120)
    drained = worker.stop(drain_s=drain_s)
    return worker, emitted, drained


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_clip_becomes_one_case_per_incident(shared_data: Path, tmp_path: Path, protocol: str) -> None:
    cfg = arlington(shared_data, tmp_path, protocol)
    with MosquittoBroker() as broker:
        central = CentralService(broker.url, f"sqlite:///{tmp_path / 'cases.db'}", evidence_dir=tmp_path / "snaps",
                                 events_log=tmp_path / "events.jsonl", client_id="e2e-central",
                                 protocol=protocol).start()  # type: ignore[arg-type]
        try:
            _, emitted, drained = run_edge(cfg, broker.url)
            assert drained
            assert central.wait_for(lambda: central.counters.stored >= len(emitted), 20)
            started = emitted.count("started")
            assert started >= 4
            assert central.wait_for(lambda: central.counters.evidence >= started, 20)
            with central.store.session() as session:
                rows = cases_as_rows(session)
        finally:
            central.stop()
    assert len(rows) == started
    assert {r.type for r in rows} == {"illegal_parking"}
    assert all(r.category_code == "09009" for r in rows)
    assert all(r.ended_at is not None for r in rows)  # the worker ended them when the clip finished
    assert all(r.snapshot_path and Path(r.snapshot_path).exists() for r in rows)
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == len(emitted)
    assert len({json.loads(line)["event_id"] for line in lines}) == len(lines)


def test_events_wait_in_the_outbox_while_the_broker_is_down(shared_data: Path, tmp_path: Path) -> None:
    cfg = arlington(shared_data, tmp_path)
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    emitted: list[str] = []
    worker = EdgeWorker(cfg, broker=url, on_emitted=lambda e: emitted.append(e.event.phase)).start()
    worker.wait(max_seconds=120)
    assert worker.cameras_done()
    assert len(worker.outbox) >= len(emitted) > 0  # nothing could be sent: all kept
    with MosquittoBroker(port) as broker:
        central = CentralService(broker.url, f"sqlite:///{tmp_path / 'cases.db'}", client_id="e2e-central-2",
                                 evidence_dir=tmp_path / "snaps").start()  # it receipts the snapshots too
        try:
            assert worker.stop(drain_s=60)
            assert central.wait_for(lambda: central.counters.stored >= len(emitted), 20)
            with central.store.session() as session:
                assert len(cases_as_rows(session)) == emitted.count("started")
        finally:
            central.stop()


def test_broker_restart_mid_run_loses_nothing(shared_data: Path, tmp_path: Path) -> None:
    """The broker goes down while the camera runs and comes back: every event still becomes a stored event.

    Central uses a plain (not `$share`) persistent subscription here: Mosquitto restores it from its persistence
    file, so messages published after the restart but before central reconnects are queued for it. With a
    `$share` group, Mosquitto does not queue for a group with no connected member, and such messages are lost
    (seen here in 3 of 5 runs): run one central per plain subscription, or a broker that queues for shared
    subscriptions, where that window matters.

    The outage follows the worker, not the clock: the broker stops as the first incident starts (from the worker's
    own callback) and comes back once an event was emitted while it was down (at the latest the `ended`s when the
    clip ends). Timed by
    sleeps (down at 3.5 s, up at 6.5 s), a loaded machine moved the outage before the first incident or after
    the last event, and the test no longer tested an outage mid-run.
    """
    import threading

    cfg = arlington(shared_data, tmp_path)
    cam = cfg.cameras[0]
    cfg = cfg.model_copy(update={"cameras": [cam.model_copy(update={
        "source": cam.source.model_copy(update={"realtime": True}),  # ~8 s of capture, like a live camera
    })]})
    with MosquittoBroker(persistence=True) as broker:
        central = CentralService(broker.url, f"sqlite:///{tmp_path / 'cases.db'}", client_id="e2e-central-restart",
                                 evidence_dir=tmp_path / "snaps", share_group=None).start()
        try:
            emitted: list[str] = []
            first_started, down, emitted_while_down = threading.Event(), threading.Event(), threading.Event()

            def on_emitted(e: Emitted) -> None:  # on the camera thread, after the event is in the outbox
                emitted.append(e.event.phase)
                if down.is_set():
                    emitted_while_down.set()
                elif e.event.phase == "started" and not first_started.is_set():
                    first_started.set()
                    broker.stop()  # here, so every later event (at least this incident's `ended`) meets it down
                    down.set()

            worker = EdgeWorker(cfg, broker=broker.url, on_emitted=on_emitted).start()

            def outage() -> None:
                if not down.wait(120):
                    return
                while not (emitted_while_down.is_set() or worker.cameras_done()):
                    emitted_while_down.wait(0.1)
                broker.start()
                down.clear()

            t = threading.Thread(target=outage)
            t.start()
            worker.wait(max_seconds=120)
            t.join()
            assert first_started.is_set() and emitted_while_down.is_set(), "no event met the broker down"
            assert worker.stop(drain_s=60), "outbox not drained after the broker came back"
            assert central.wait_for(lambda: central.counters.stored >= len(emitted), 60), central.snapshot()
            with central.store.session() as session:
                rows = cases_as_rows(session)
        finally:
            central.stop()
    assert emitted.count("started") >= 4
    assert len(rows) == emitted.count("started")
    assert all(r.ended_at is not None for r in rows)
