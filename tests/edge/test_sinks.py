"""The loop's sinks on a real run of the pipeline (FakeDetector): what each one writes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gridwatch.edge.camera import FrameResult
from gridwatch.edge.evidence import annotate
from gridwatch.edge.loop import run_camera
from gridwatch.edge.sinks import JsonlSink, VideoSink, render
from gridwatch.edge.sinks_outbox import OutboxSink
from gridwatch.edge.sources import FileSource
from gridwatch.wire.events import IncidentEvent
from gridwatch.wire.fake_transport import FakeTransport
from gridwatch.wire.outbox import Outbox
from gridwatch.wire.publisher import Publisher
from tests.edge.test_loop import T0, RecordingSink, pipeline
from tests.edge.test_sources import write_clip
from tests.edge.test_worker import config


def run(tmp: Path, *sinks: object) -> RecordingSink:
    clip = write_clip(tmp / "clip.mp4", n=30, fps=10.0)
    recorder = RecordingSink()
    source = FileSource(clip, "cam1", start_wall=T0, sample_fps=10)
    run_camera(source, pipeline(config(tmp, clip)), [recorder, *sinks])  # type: ignore[list-item]
    return recorder


def test_video_sink_writes_one_decodable_annotated_frame_per_analysed_frame(tmp_path: Path) -> None:
    video = VideoSink(tmp_path / "out" / "annotated.mp4", fps=10.0)
    recorder = run(tmp_path, video)
    cap = cv2.VideoCapture(str(tmp_path / "out" / "annotated.mp4"))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    assert len(frames) == len(recorder.frames) == 30
    assert frames[-1].shape == (48, 64, 3)
    # The last frame has an open incident: its thick red box is drawn (the source frames are grey).
    red = (frames[-1][:, :, 2] > 150) & (frames[-1][:, :, 1] < 100) & (frames[-1][:, :, 0] < 100)
    assert red.sum() > 20


def test_annotate_draws_on_a_copy_and_labels_every_track_and_incident(tmp_path: Path) -> None:
    recorder = run(tmp_path)
    last: FrameResult = recorder.frames[-1]
    before = last.frame.image.copy()
    drawn = render(last)
    assert np.array_equal(last.frame.image, before)  # the analysed frame is never drawn on
    assert drawn.shape == before.shape and not np.array_equal(drawn, before)
    plain = annotate(before, last.tracks, (), ())
    assert not np.array_equal(plain, drawn)  # zones, incident box and caption add to the tracks


def test_jsonl_sink_writes_every_event_and_the_started_snapshot(tmp_path: Path) -> None:
    jsonl = JsonlSink(tmp_path / "out")
    run(tmp_path, jsonl)
    lines = (tmp_path / "out" / "incidents.jsonl").read_text().splitlines()
    events = [IncidentEvent.from_json(line) for line in lines]
    assert [e.phase for e in events] == ["started", "ended"] and events == jsonl.events
    assert (tmp_path / "out" / "snapshots" / f"{events[0].incident_id}.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_outbox_sink_queues_incident_and_evidence_rows(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    transport = FakeTransport(connected=False)  # nothing leaves: the rows stay queued
    publisher = Publisher(outbox, transport).start()
    sink = OutboxSink(outbox, publisher, "gridwatch/v1", tmp_path / "evidence")
    try:
        run(tmp_path, sink)
        rows = outbox.pending()
    finally:
        publisher.stop()
        outbox.close()
    assert [(r.kind, r.topic) for r in rows] == [
        ("incident", "gridwatch/v1/s1/gw1/cam1/incident"),
        ("evidence", "gridwatch/v1/s1/gw1/cam1/evidence"),
        ("incident", "gridwatch/v1/s1/gw1/cam1/incident"),
    ]
    assert sink.events == 2
    started = IncidentEvent.from_json(rows[0].payload)
    assert rows[1].properties["incident_id"] == started.incident_id
    assert (tmp_path / "evidence" / f"{started.incident_id}.jpg").exists()
