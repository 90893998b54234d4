"""Small factories for valid `IncidentEvent` fixtures (the wire contract) used by the central tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from gridwatch.wire.events import GeoLocation, ImageBox, IncidentEvent, ModelRef

T0 = datetime(2026, 11, 21, 8, 30, 0, tzinfo=timezone.utc)
MODEL_SHA = "ab" * 32
GRID_A = "370203001001"
GRID_B = "370203001002"


def make_event(
    incident_id: str = "inc-0000001",
    seq: int = 0,
    phase: str = "started",
    *,
    dwell_s: float | None = None,
    grid_cell: str | None = GRID_A,
    located: bool = True,
    incident_type: str = "illegal_parking",
    **overrides: Any,
) -> IncidentEvent:
    """A valid event; `seq` drives the times (one minute per message) unless overridden."""
    observed = T0 + timedelta(minutes=seq)
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "incident_id": incident_id,
        "seq": seq,
        "type": incident_type,
        "phase": phase,
        "site_id": "site-1",
        "gateway_id": "gw-1",
        "camera_id": "cam-1",
        "zone": "no-parking-1",
        "started_at": T0,
        "observed_at": observed,
        "ended_at": observed if phase == "ended" else None,
        "end_reason": "gone" if phase == "ended" else None,
        "dwell_s": 60.0 * seq + 120.0 if dwell_s is None else dwell_s,
        "confidence": 0.8,
        "location": (
            GeoLocation(lat=36.0671 + seq * 1e-5, lon=120.3826, accuracy_m=3.5, grid_cell=grid_cell)
            if located
            else None
        ),
        "box": ImageBox(x1=10, y1=20, x2=110, y2=220, image_width=1280, image_height=720),
        "model": ModelRef(name="yolo11n", version="1.0.0", sha256=MODEL_SHA),
    }
    fields.update(overrides)
    return IncidentEvent(**fields)


def lifecycle(incident_id: str = "inc-0000001", updates: int = 1, **kw: Any) -> list[IncidentEvent]:
    """started, `updates` x updated, ended — with seq 0..n."""
    phases = ["started"] + ["updated"] * updates + ["ended"]
    return [make_event(incident_id, seq, phase, **kw) for seq, phase in enumerate(phases)]


def payload(event: IncidentEvent) -> bytes:
    """The bytes an edge gateway publishes for `event`."""
    return event.to_json().encode("utf-8")


JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) + b"\xff\xd9"


def topic_of(event: IncidentEvent, kind: str = "incident", prefix: str = "gridwatch/v1") -> str:
    """The topic the event's own gateway publishes it on."""
    return f"{prefix}/{event.site_id}/{event.gateway_id}/{event.camera_id}/{kind}"


def jpeg_props(incident_id: str, data: bytes = JPEG_BYTES, **extra: str) -> dict[str, str]:
    """The MQTT 5 properties an edge gateway sends with a snapshot (sha256 of the bytes included)."""
    import hashlib

    return {"incident_id": incident_id, "event_id": "e-1", "content_type": "image/jpeg",
            "sha256": hashlib.sha256(data).hexdigest(), **extra}
