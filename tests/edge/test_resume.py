"""A gateway restart continues the open incidents (same ids) instead of ending them as resolved and starting over.

The worker runs with the fake detector (a parked car that never leaves) and the fake transport; the state file
that carries the incidents over is the real one.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from gridwatch.edge.camera import Emitted
from gridwatch.edge.config import SiteConfig, load_site_config, parse_site_config
from gridwatch.edge.resume import ResumeState, SavedIncident, state_path, to_capture, to_wall
from gridwatch.edge.worker import EdgeWorker
from gridwatch.models.fake import FakeDetector
from gridwatch.pipelines.types import OpenIncident
from gridwatch.wire.events import IncidentEvent
from gridwatch.wire.fake_transport import FakeTransport
from tests.edge.test_sources import write_clip
from tests.edge.test_worker import config

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
CAR = (10, 10, 40, 40, "car", 0.9)


def looping(tmp: Path) -> SiteConfig:
    cfg = config(tmp, write_clip(tmp / "clip.mp4", n=40, fps=10.0))
    data = cfg.model_dump(mode="json", exclude_none=True)
    data["cameras"][0]["source"]["loop"] = True
    # the clip loops far faster than real time: no periodic `updated` may slip in before the stop
    data["cameras"][0]["incidents"]["illegal_parking"]["update_every_s"] = 3600
    return parse_site_config(data)


def run_until_reported(cfg: SiteConfig, start_wall: datetime) -> list[IncidentEvent]:
    """Start a worker, wait for its first incident message, stop it; return the incident events it sent."""
    seen = threading.Event()

    def on_emitted(item: Emitted) -> None:
        if item.event.phase != "ended":
            seen.set()

    transport = FakeTransport(auto_receipt=True)
    det = FakeDetector.from_boxes([[CAR]], when_exhausted="repeat_last")
    worker = EdgeWorker(cfg, detector=det, transport=transport, start_wall=start_wall, on_emitted=on_emitted)
    worker.start()
    try:
        assert seen.wait(30), "no incident message within 30 s"
    finally:
        assert worker.stop(drain_s=5)
    return [IncidentEvent.from_json(p) for t, p, _ in transport.sent if t.endswith("/incident")]


def test_a_restarted_worker_continues_the_same_incident(tmp_path: Path) -> None:
    cfg = looping(tmp_path)
    first = run_until_reported(cfg, T0)
    assert [(e.phase, e.end_reason) for e in first] == [("started", None), ("ended", "shutdown")]
    assert state_path(cfg).exists()

    second = run_until_reported(cfg, T0 + timedelta(hours=1))
    assert [(e.phase, e.end_reason) for e in second] == [("updated", None), ("ended", "shutdown")]
    assert {e.incident_id for e in second} == {first[0].incident_id}
    assert [e.seq for e in first + second] == [0, 1, 2, 3]
    assert second[0].started_at == first[0].started_at  # dwell keeps counting from the original start
    assert second[0].dwell_s >= 3600


def test_incident_ids_hold_no_run_id_and_are_not_guessable(tmp_path: Path) -> None:
    ids = set()
    for name in ("a", "b"):  # two gateways (or a gateway and its own state lost) on the same scene
        (tmp_path / name).mkdir()
        ids.add(run_until_reported(looping(tmp_path / name), T0)[0].incident_id)
    assert len(ids) == 2
    for iid in ids:
        camera, kind, token = iid.split("-")
        assert (camera, kind, len(token)) == ("cam1", "illegal_parking", 16)


def test_a_file_that_ends_ends_its_incidents_as_source_ended(tmp_path: Path) -> None:
    cfg = config(tmp_path, write_clip(tmp_path / "clip.mp4", n=30, fps=10.0))
    transport = FakeTransport(auto_receipt=True)
    det = FakeDetector.from_boxes([[CAR]], when_exhausted="repeat_last")
    worker = EdgeWorker(cfg, detector=det, transport=transport, start_wall=T0).start()
    worker.wait(max_seconds=30)
    assert worker.cameras_done()
    assert worker.stop(drain_s=5)
    events = [IncidentEvent.from_json(p) for t, p, _ in transport.sent if t.endswith("/incident")]
    assert [(e.phase, e.end_reason) for e in events] == [("started", None), ("ended", "source_ended")]


def saved(camera_id: str = "cam1", incident_id: str = "cam1-illegal_parking-x") -> SavedIncident:
    return SavedIncident(camera_id=camera_id, incident_id=incident_id, type="illegal_parking", seq=3,
                         started_at=T0, last_seen_at=T0 + timedelta(seconds=90), zone="kerb", confidence=0.9,
                         first_box=(1, 2, 3, 4), box=(1, 2, 3, 5), anchor=(2, 4.8), ground=(1.5, -2.0))


def test_wall_clock_round_trip_across_capture_clocks() -> None:
    rec = OpenIncident("i-1", "illegal_parking", 4, 5.0, 65.0, "kerb", 0.8, (1, 2, 3, 4), (1, 2, 3, 5), (2, 4.8),
                       None)
    s = to_wall(rec, "cam1", frame_ts=70.0, frame_wall=T0)
    assert (T0 - s.started_at).total_seconds() == pytest.approx(65.0)
    # the next run's clock starts at 0 one hour later: the incident started 3665 s before its first frame
    back = to_capture(s, frame_ts=0.0, frame_wall=T0 + timedelta(hours=1))
    assert back.started_ts == pytest.approx(-3665.0)
    assert back.last_ts == pytest.approx(-3605.0)
    assert (back.incident_id, back.seq, back.box, back.first_box) == (rec.incident_id, 4, rec.box, rec.first_box)


def test_state_file_round_trip_is_consumed_on_load(tmp_path: Path) -> None:
    path = tmp_path / "state" / "open-incidents.json"
    state = ResumeState(path)
    state.keep("cam1", [saved()])
    state.keep("cam2", [saved("cam2", "cam2-illegal_parking-y")])
    state.save()
    loaded = ResumeState.load(path)
    assert not path.exists()  # a crash after this start must not resurrect what a later run settles
    assert loaded.take("cam1") == [saved()]
    assert loaded.take("cam1") == []
    assert [s.incident_id for s in loaded.all()] == ["cam2-illegal_parking-y"]
    loaded.keep("cam2", [])
    loaded.save()
    assert not path.exists()


def test_a_damaged_state_file_is_set_aside_and_the_gateway_starts(tmp_path: Path) -> None:
    path = tmp_path / "open-incidents.json"
    path.write_text('{"version": 1, "incidents": [{"camera_id": ')
    assert ResumeState.load(path).all() == []
    assert not path.exists() and (tmp_path / "open-incidents.json.bad").exists()


def test_state_path_defaults_next_to_the_outbox_and_resolves_against_the_config_file(tmp_path: Path) -> None:
    cfg = config(tmp_path, tmp_path / "clip.mp4")
    assert state_path(cfg) == tmp_path / "open-incidents.json"
    (tmp_path / "site.yaml").write_text(
        "site_id: s1\ngateway_id: gw1\ndetector: {type: onnx, model: m.onnx}\nstate: {path: keep/open.json}\n"
        "cameras: [{id: cam1, source: {type: file, path: clip.mp4}}]\n"
    )
    assert state_path(load_site_config(tmp_path / "site.yaml")) == (tmp_path / "keep" / "open.json").resolve()


class CrashesOnce(FakeDetector):
    """Raises once, on its 25th call: after the parked car's incident has started."""

    def detect(self, image: np.ndarray) -> sv.Detections:
        if len(self.calls) == 24 and not getattr(self, "_raised", False):
            self._raised = True
            raise RuntimeError("decoder hiccup")
        return super().detect(image)


def test_a_camera_thread_restarted_after_a_crash_continues_the_same_incident(tmp_path: Path) -> None:
    cfg = config(tmp_path, write_clip(tmp_path / "clip.mp4", n=40, fps=10.0))
    transport = FakeTransport(auto_receipt=True)
    det = CrashesOnce.from_boxes([[CAR]], when_exhausted="repeat_last")
    worker = EdgeWorker(cfg, detector=det, transport=transport, start_wall=T0, max_restarts=2).start()
    worker.wait(max_seconds=30)
    assert worker.stop(drain_s=5)
    assert worker.stats["cam1"].restarts == 1
    events = [IncidentEvent.from_json(p) for t, p, _ in transport.sent if t.endswith("/incident")]
    assert [(e.phase, e.end_reason) for e in events] == [
        ("started", None), ("ended", "stream_lost"), ("updated", None), ("ended", "source_ended")
    ]
    assert len({e.incident_id for e in events}) == 1
    assert [e.seq for e in events] == [0, 1, 2, 3]


def test_the_resume_sink_rewrites_the_file_only_when_incidents_change(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from gridwatch.edge.resume import ResumeSink

    path = tmp_path / "open-incidents.json"
    state = ResumeState(path)
    exported = [saved()]
    sink = ResumeSink(state, "cam1", lambda: list(exported))
    sink.on_frame(SimpleNamespace(updates=[]))  # type: ignore[arg-type]
    assert not path.exists()  # nothing changed: no write
    sink.on_frame(SimpleNamespace(updates=["started"]))  # type: ignore[arg-type]
    assert saved().incident_id in path.read_text()
    exported.clear()
    sink.on_frame(SimpleNamespace(updates=["ended"]))  # type: ignore[arg-type]
    assert not path.exists()  # the last open incident ended: nothing to continue
