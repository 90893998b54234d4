"""The worker's composition with fakes: FakeDetector in, FakeTransport out (the real ones run in tests/e2e)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from gridwatch.app.broker import free_port
from gridwatch.edge.config import SiteConfig, parse_site_config
from gridwatch.edge.worker import STOP_BUDGET_S, EdgeWorker, run_worker
from gridwatch.models.fake import FakeDetector
from gridwatch.wire.events import IncidentEvent
from gridwatch.wire.fake_transport import FakeTransport
from gridwatch.wire.outbox import Outbox
from tests.edge.test_sources import write_clip


def config(tmp: Path, clip: Path, **source: object) -> SiteConfig:
    return parse_site_config({
        "site_id": "s1", "gateway_id": "gw1",
        "detector": {"type": "onnx", "model": "unused.onnx"},
        "outbox": {"path": str(tmp / "outbox.db")},
        "evidence": {"dir": str(tmp / "evidence")},
        "cameras": [{
            "id": "cam1", "analysis_fps": 10,
            "source": {"type": "file", "path": str(clip), **source},
            "zones": [{"name": "kerb", "points": [[0, 0], [64, 0], [64, 48], [0, 48]]}],
            "incidents": {"illegal_parking": {"zones": ["kerb"], "dwell_s": 1.0, "classes": ["car"]}},
        }],
    })


class Flaky(FakeDetector):
    """Raises on its 3rd call, as a driver hiccup would."""

    def detect(self, image: np.ndarray) -> sv.Detections:
        if len(self.calls) == 2 and not getattr(self, "_raised", False):
            self._raised = True
            raise RuntimeError("GPU fell off the bus")
        return super().detect(image)


def run(tmp_path: Path, detector: FakeDetector) -> tuple[EdgeWorker, FakeTransport]:
    cfg = config(tmp_path, write_clip(tmp_path / "clip.mp4", n=40, fps=10.0))
    transport = FakeTransport(auto_receipt=True)
    worker = EdgeWorker(cfg, detector=detector, transport=transport, max_restarts=2).start()
    worker.wait(max_seconds=30)
    assert worker.stop(drain_s=5)
    return worker, transport


def test_parked_car_is_published_with_snapshot_and_ended_on_stop(tmp_path: Path) -> None:
    det = FakeDetector.from_boxes([[(10, 10, 40, 40, "car", 0.9)]], when_exhausted="repeat_last")
    worker, transport = run(tmp_path, det)
    incidents = [IncidentEvent.from_json(p) for t, p, _ in transport.sent if t.endswith("/incident")]
    assert [e.phase for e in incidents] == ["started", "ended"]
    assert all(t == "gridwatch/v1/s1/gw1/cam1/incident" for t, _, _ in transport.sent if t.endswith("incident"))
    evidence = [(p, props) for t, p, props in transport.sent if t.endswith("/evidence")]
    assert len(evidence) == 1
    jpeg, props = evidence[0]
    assert jpeg[:2] == b"\xff\xd8"
    assert props["incident_id"] == incidents[0].incident_id
    assert props["sha256"] == incidents[0].evidence[0].sha256
    assert (tmp_path / "evidence" / f"{incidents[0].incident_id}.jpg").exists()
    status = [json.loads(p) for t, p, _ in transport.sent if t.endswith("/status")]
    assert status[0]["state"] == "online" and status[-1]["state"] == "offline"
    assert worker.stats["cam1"].analysed == 40


def test_camera_thread_restarts_after_an_exception(tmp_path: Path) -> None:
    det = Flaky.from_boxes([[(10, 10, 40, 40, "car", 0.9)]], when_exhausted="repeat_last")
    worker, transport = run(tmp_path, det)
    assert worker.stats["cam1"].errors == 1
    assert worker.stats["cam1"].restarts == 1
    phases = [IncidentEvent.from_json(p).phase for t, p, _ in transport.sent if t.endswith("/incident")]
    assert phases[0] == "started" and phases[-1] == "ended"


def test_run_worker_returns_1_and_keeps_the_rows_when_the_outbox_cannot_drain(tmp_path: Path) -> None:
    cfg = config(tmp_path, write_clip(tmp_path / "clip.mp4", n=40, fps=10.0))
    det = FakeDetector.from_boxes([[(10, 10, 40, 40, "car", 0.9)]], when_exhausted="repeat_last")
    t0 = time.monotonic()
    code = run_worker(cfg, broker=f"mqtt://127.0.0.1:{free_port()}", max_seconds=20, detector=det)  # nobody there
    assert code == 1
    assert time.monotonic() - t0 < 10  # the drain is bounded
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        kinds = [item.kind for item in outbox.pending()]
    finally:
        outbox.close()
    assert kinds.count("incident") == 2 and kinds.count("evidence") == 1  # started + ended, kept for next start


def test_max_seconds_counts_from_the_start_and_stops_a_looping_camera(tmp_path: Path) -> None:
    cfg = config(tmp_path, write_clip(tmp_path / "clip.mp4", n=40, fps=10.0), loop=True, realtime=True)
    det = FakeDetector.from_boxes([[]], when_exhausted="repeat_last")
    t0 = time.monotonic()
    run_worker(cfg, broker=f"mqtt://127.0.0.1:{free_port()}", max_seconds=2.0, detector=det)
    assert time.monotonic() - t0 < 2.0 + 5.0


def test_worker_runs_the_sites_named_detectors_at_their_rates_and_saves_hard_examples(tmp_path: Path) -> None:
    data = config(tmp_path, write_clip(tmp_path / "clip.mp4", n=40, fps=10.0)).model_dump(mode="json")
    data["detectors"] = {"street": {"type": "onnx", "model": "unused2.onnx"}}
    data["cameras"][0]["detectors"] = ["default", {"name": "street", "every_s": 1.0}]
    data["hard_examples"] = {"enabled": True, "dir": str(tmp_path / "hard"), "every_s": 1.0}
    cfg = parse_site_config(data)
    coco = FakeDetector.from_boxes([[(10, 10, 40, 40, "car", 0.9)]], when_exhausted="repeat_last")
    street = FakeDetector.from_boxes([[(50, 5, 60, 20, "litter", 0.4)]], when_exhausted="repeat_last")
    transport = FakeTransport(auto_receipt=True)
    worker = EdgeWorker(cfg, detector={"default": coco, "street": street}, transport=transport).start()
    worker.wait(max_seconds=30)
    health = worker.health()
    assert worker.stop(drain_s=5)
    assert len(coco.calls) == 40 and len(street.calls) == 4  # 4 s of clip: the street model once a second
    phases = [IncidentEvent.from_json(p).phase for t, p, _ in transport.sent if t.endswith("/incident")]
    assert phases == ["started", "ended"]
    assert health["hard_examples"] == {"saved": 4, "deleted": 0}  # litter at 0.4: unsure, once a second


def test_a_model_update_on_the_control_topic_is_answered_on_the_retained_status(tmp_path: Path) -> None:
    """The worker subscribes its control topic; an unsigned model is refused, the refusal goes out on the status
    at once (not with the next heartbeat) and the configured model keeps running."""
    from tests.model_updates import fake_bundle, messages

    cfg = config(tmp_path, write_clip(tmp_path / "clip.mp4", n=40, fps=10.0), loop=True)
    transport = FakeTransport(auto_receipt=True)
    detector = FakeDetector([], when_exhausted="empty")
    worker = EdgeWorker(cfg, detector=detector, transport=transport).start()
    try:
        topic = "gridwatch/v1/s1/gw1/control"
        assert list(transport.subscriptions) == [topic, "gridwatch/v1/s1/gw1/receipt"]
        for payload in messages(fake_bundle(tmp_path / "m"), "s1", "gw1", None):
            transport.deliver(topic, payload)
        statuses = [json.loads(p) for t, p, _ in transport.sent if t == "gridwatch/v1/s1/gw1/status"]
        refused = [s for s in statuses if (s.get("model_update") or {}).get("result") == "refused"]
        assert refused and "unsigned" in refused[-1]["model_update"]["reason"]
        assert refused[-1]["model"]["name"] == "fake" and worker.swappable.current is detector
    finally:
        worker.stop(drain_s=2)


def test_receipts_are_the_default_and_puback_is_an_explicit_fallback_said_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Without a receipt the rows stay (a central that sends none strands them); `mqtt.confirm: puback` deletes on
    the PUBACK, with a warning at every start that a broker crash can then lose events."""
    clip = write_clip(tmp_path / "clip.mp4", n=40, fps=10.0)
    det = FakeDetector.from_boxes([[(10, 10, 40, 40, "car", 0.9)]], when_exhausted="repeat_last")
    silent = FakeTransport()  # acknowledges every publish, but no central answers
    worker = EdgeWorker(config(tmp_path / "a", clip), detector=det, transport=silent).start()
    worker.wait(max_seconds=30)
    assert not worker.stop(drain_s=1)
    assert worker.pending == 3 and "gridwatch/v1/s1/gw1/receipt" in silent.subscriptions

    data = config(tmp_path / "b", clip).model_dump(mode="json")
    data["mqtt"] = {"confirm": "puback"}
    caplog.set_level(logging.WARNING, logger="gridwatch.edge.worker")
    old = FakeTransport()
    worker = EdgeWorker(parse_site_config(data), detector=det, transport=old).start()
    worker.wait(max_seconds=30)
    assert worker.stop(drain_s=5)
    assert list(old.subscriptions) == ["gridwatch/v1/s1/gw1/control"]
    assert "mqtt.confirm is 'puback'" in caplog.text and "broker crash" in caplog.text


class StuckThread:
    """A camera thread that never ends: join waits out its timeout, as a real stuck thread makes it."""

    def __init__(self, waits: list[tuple[str, float | None]]) -> None:
        self.name, self.waits = "camera-stuck", waits

    def join(self, timeout: float | None = None) -> None:
        self.waits.append(("camera", timeout))
        time.sleep(timeout or 0.0)

    def is_alive(self) -> bool:
        return True


def test_stop_waits_at_most_its_budget_whatever_hangs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two camera threads that never end, an outbox that never drains: every wait stop() asks for is bounded,
    and together they fit STOP_BUDGET_S (5 s). Asserted on the timeouts requested, not on wall time, so a loaded
    machine cannot make it fail (the e2e SIGTERM test measured wall time and did)."""
    cfg = config(tmp_path, write_clip(tmp_path / "clip.mp4", n=40, fps=10.0))
    worker = EdgeWorker(cfg, detector=FakeDetector.from_boxes([[]], when_exhausted="repeat_last"),
                        transport=FakeTransport()).start()
    waits: list[tuple[str, float | None]] = []
    real_threads, worker._threads = worker._threads, [StuckThread(waits), StuckThread(waits)]
    publisher_stop = worker.publisher.stop

    def drain(timeout_s: float) -> bool:
        waits.append(("drain", timeout_s))
        return False

    def stop_publisher(join_s: float = 5.0) -> None:
        waits.append(("publisher", join_s))
        publisher_stop(join_s)

    monkeypatch.setattr(worker.publisher, "drain", drain)
    monkeypatch.setattr(worker.publisher, "stop", stop_publisher)
    assert worker.stop() is False
    for t in real_threads:
        t.join(timeout=10)
    assert [w for w, _ in waits] == ["camera", "camera", "drain", "publisher"]
    assert all(t is not None and t >= 0 for _, t in waits), waits
    assert sum(t or 0.0 for _, t in waits) <= STOP_BUDGET_S + 1e-6, waits
    assert STOP_BUDGET_S <= 5.0


def test_drain_is_bounded_in_wall_time_when_the_outbox_is_slow(tmp_path: Path) -> None:
    """The drain counted its 50 ms naps instead of reading the clock: on a loaded machine, where every outbox
    query is slow, a 2 s drain took several seconds. Here each query takes 0.2 s: counting naps, drain(0.4) would
    run 8 rounds (2 s); by the clock it stops after the first query past 0.4 s."""
    from gridwatch.wire.publisher import Publisher

    class SlowOutbox(Outbox):
        def __len__(self) -> int:
            time.sleep(0.2)
            return 1

    box = SlowOutbox(tmp_path / "outbox.db")
    pub = Publisher(box, FakeTransport())
    t0 = time.monotonic()
    assert pub.drain(0.4) is False
    assert time.monotonic() - t0 < 1.5
    box.close()
