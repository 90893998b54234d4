"""The worker's sink: each event becomes an outbox row (and its snapshot a file plus an evidence row), then the
publisher is woken. The outbox is the durable hand-off: what the publisher has not delivered survives a restart.
Both rows are keyed by the event's `event_id`, which central's receipt names once it has committed them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from gridwatch.edge.camera import Emitted, FrameResult
from gridwatch.edge.evidence import save_snapshot
from gridwatch.wire.outbox import Outbox
from gridwatch.wire.publisher import Publisher
from gridwatch.wire.topics import evidence_topic, incident_topic


@dataclass
class OutboxSink:
    """`lock` is shared by every camera's sink so an incident row and its evidence row are written together."""

    outbox: Outbox
    publisher: Publisher
    prefix: str
    evidence_dir: Path
    publish_evidence: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    events: int = 0

    def on_frame(self, result: FrameResult) -> None:
        self.on_events(result.emitted)

    def on_events(self, emitted: list[Emitted]) -> None:
        for item in emitted:
            ev = item.event
            with self.lock:
                key = str(ev.event_id)  # what central's receipt names (`gridwatch.wire.receipts`)
                self.outbox.put("incident", incident_topic(self.prefix, ev.site_id, ev.gateway_id, ev.camera_id),
                                ev.to_json().encode(), key=key)
                if item.snapshot is not None:
                    save_snapshot(item.snapshot, self.evidence_dir, ev.incident_id)
                    if self.publish_evidence:
                        props = {"content_type": "image/jpeg", "incident_id": ev.incident_id,
                                 "event_id": str(ev.event_id), "sha256": item.snapshot.ref.sha256}
                        topic = evidence_topic(self.prefix, ev.site_id, ev.gateway_id, ev.camera_id)
                        self.outbox.put("evidence", topic, item.snapshot.jpeg, props, key=key)
            self.events += 1
            self.publisher.notify()

    def close(self) -> None:
        """The outbox and publisher outlive one camera run; the worker closes them."""
