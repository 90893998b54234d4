from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from gridwatch.wire.events import IncidentEvent, event_json_schema_text

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "wire" / "incident_event.schema.json"
T0 = datetime(2026, 11, 21, 8, 0, tzinfo=timezone.utc)


def event(**changes: object) -> dict:  # type: ignore[type-arg]
    base = {
        "event_id": str(uuid.uuid4()), "incident_id": "cam1-abc-illegal_parking-00001", "seq": 0,
        "type": "illegal_parking", "phase": "started", "site_id": "s1", "gateway_id": "gw1", "camera_id": "cam1",
        "started_at": T0.isoformat(), "observed_at": (T0 + timedelta(seconds=60)).isoformat(), "dwell_s": 60.0,
        "confidence": 0.8, "box": {"x1": 1, "y1": 2, "x2": 30, "y2": 40, "image_width": 640, "image_height": 360},
        "model": {"name": "m", "version": "1", "sha256": "a" * 64},
        "location": {"lat": 39.9, "lon": 116.4, "accuracy_m": 1.5, "grid_cell": "11010500"},
    }
    base.update(changes)
    return base


def test_committed_schema_matches_the_model() -> None:
    assert SCHEMA_FILE.read_text() == event_json_schema_text(), "run: gridwatch schema event > " + str(SCHEMA_FILE)


def test_cli_prints_the_schema() -> None:
    out = subprocess.run([sys.executable, "-m", "gridwatch.app.cli", "schema", "event"], capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out)["title"] == "IncidentEvent"


def test_round_trip() -> None:
    ev = IncidentEvent.model_validate(event())
    assert IncidentEvent.from_json(ev.to_json()) == ev


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"phase": "ended"}, "ended_at"),
        ({"ended_at": T0.isoformat()}, "ended_at is only set"),
        ({"started_at": "2026-11-21T08:00:00"}, "timezone"),
        ({"type": "jaywalking"}, "type"),
        ({"site_id": "a/b"}, "site_id"),
        ({"location": {"lat": 91, "lon": 0, "accuracy_m": 1}}, "lat"),
        ({"location": {"lat": 1, "lon": 0, "accuracy_m": 1, "grid_cell": "abc"}}, "grid_cell"),
        ({"observed_at": (T0 - timedelta(seconds=1)).isoformat()}, "before started_at"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_events_are_rejected(changes: dict, fragment: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError) as info:
        IncidentEvent.model_validate(event(**changes))
    assert fragment in str(info.value)


def test_event_type_enum_is_the_incident_registry() -> None:
    from gridwatch.pipelines.registry import default_registry

    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["properties"]["type"]["enum"] == list(default_registry().names())
    with pytest.raises(ValidationError) as info:
        IncidentEvent.model_validate(event(type="jaywalking"))
    assert all(name in str(info.value) for name in default_registry().names())


def test_the_wire_contract_loads_the_registry_without_numpy_or_opencv() -> None:
    # wire (and so central and `gridwatch schema event`) reads the incident registry: the type modules must stay
    # light at import; their factories load the rule machinery only when a rule is built.
    code = ("import sys, gridwatch.wire.events as e; assert e.INCIDENT_TYPES; "
            "print(sorted(m for m in ('numpy', 'cv2', 'supervision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# Issue 8, hole 7: absurd values are rejected by the contract itself, so SQLite and PostgreSQL see the same thing
# (before, `dwell_s = 1e999` was stored as infinity and served as null, and `seq >= 2**31` or a NUL byte was
# stored by one store and dead-lettered by the other).
ENDED = {"phase": "ended", "end_reason": "gone"}


@pytest.mark.parametrize(
    "payload_fragment, error_fragment",
    [
        ('"dwell_s": 1e999', "finite"),
        ('"confidence": NaN', "finite"),
        ('"seq": 2147483648', "less than or equal to 2147483647"),
        ('"zone": "kerb\\u0000"', "control characters"),
        ('"zone": "line\\nbreak"', "control characters"),
        ('"started_at": "1970-01-01T00:00:00Z"', "outside 2000-2099"),
        ('"dwell_s": 40000000.0', "less than or equal to"),
    ],
)
def test_absurd_values_are_rejected(payload_fragment: str, error_fragment: str) -> None:
    key = payload_fragment.split(":")[0].strip('"')
    base = event()
    base.pop(key, None)
    text = json.dumps(base)[:-1] + ", " + payload_fragment + "}"
    with pytest.raises(ValidationError) as info:
        IncidentEvent.from_json(text)
    assert error_fragment in str(info.value)


def test_an_end_before_the_start_is_rejected() -> None:
    with pytest.raises(ValidationError, match="ended_at is before started_at"):
        IncidentEvent.model_validate(event(**ENDED, ended_at=(T0 - timedelta(seconds=5)).isoformat()))
    ok = IncidentEvent.model_validate(event(**ENDED, ended_at=(T0 + timedelta(seconds=61)).isoformat()))
    assert ok.ended_at is not None and ok.ended_at > ok.started_at


def test_the_largest_valid_seq_and_dwell_are_accepted() -> None:
    ev = IncidentEvent.model_validate(event(seq=2**31 - 1, dwell_s=366 * 86_400.0))
    assert ev.seq == 2**31 - 1
