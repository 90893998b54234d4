"""The wire contract between an edge gateway and the central service.

`IncidentEvent` is the only type that crosses the MQTT boundary for incidents. It is versioned
(`schema_version`), its JSON Schema is committed at `wire/incident_event.schema.json` and printed by
`gridwatch schema event`, and a test keeps the two in sync.

Identity rules:
- `event_id` is unique per message: it is the idempotency key (the central store has a unique constraint on it,
  so a message replayed by the outbox after a lost PUBACK is stored once).
- `incident_id` is stable over the `started` / `updated` / `ended` messages of one incident: the central service
  upserts one case per `incident_id`.
- `seq` increases by one per message of an incident, so a consumer can ignore an older `updated` that arrives
  after a newer one. It keeps increasing over a gateway restart: a restarted gateway that finds the same object
  again continues the same incident (same `incident_id`, phase `updated`) even after an `ended` it sent when it
  stopped.

Why an incident ended (`end_reason`, since 1.1): only `gone` means the camera saw the scene clear; `shutdown`,
`source_ended` and `stream_lost` mean the camera stopped watching, and say nothing about the scene. A 1.0
`ended` has no reason; consumers must treat it as unknown, not as `gone`.

Category codes (GB/T 47678.5-2026 and city variants) are *not* here: they are data on the central side.
The `type` enum is the incident registry's names (`gridwatch.pipelines.registry`): the one import this package
makes from above it, of a pure, light module (pydantic only; no numpy or OpenCV reach central through it).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import SchemaValidator

from gridwatch.pipelines.registry import default_registry

SCHEMA_VERSION: Literal["1.1"] = "1.1"
SchemaVersion = Literal["1.0", "1.1"]

# The event's `type` enum is the incident registry's names: one module per type in gridwatch.pipelines.incidents,
# nothing to edit here when a type is added (regenerate the committed schema: `gridwatch schema event`).
INCIDENT_TYPES: tuple[str, ...] = default_registry().names()
if TYPE_CHECKING:
    IncidentTypeName = str
else:
    IncidentTypeName = Literal[INCIDENT_TYPES]
Phase = Literal["started", "updated", "ended"]
EndReason = Literal["gone", "shutdown", "source_ended", "stream_lost"]

Ident = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Identifier safe to use as an MQTT topic level: letters, digits, '_', '.', '-'.",
    ),
]
GridCode = Annotated[
    str,
    Field(
        min_length=1,
        max_length=15,
        pattern=r"^[0-9A-Z]+$",
        description="Unit-grid code (up to 15 of [0-9A-Z]; first 6 digits are the GB/T 2260 county code).",
    ),
]


# Bounds that make both stores (SQLite and PostgreSQL) see the same thing: a 32-bit signed integer column holds
# `seq`, and neither accepts NUL in text the same way, so the contract rejects them before any store is reached.
MAX_SEQ = 2**31 - 1
MAX_DWELL_S = 366 * 86_400.0
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)


_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f]")  # C0 controls and DEL; one regex search, not a loop per char


def _no_control_chars(value: object) -> object:
    if isinstance(value, str) and _CONTROL_CHARS.search(value):
        raise ValueError("text must not contain control characters (NUL, newlines, escapes)")
    return value


class _Strict(BaseModel):
    """Unknown keys are errors, floats are finite (no NaN, no infinity), text has no control characters."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _plain_text(cls, v: object) -> object:
        return _no_control_chars(v)


class GeoLocation(_Strict):
    """Where the incident is on the ground. Stored in WGS-84; converted (e.g. to GCJ-02) only for display."""

    lat: float = Field(ge=-90, le=90, description="Latitude, WGS-84 degrees.")
    lon: float = Field(ge=-180, le=180, description="Longitude, WGS-84 degrees.")
    crs: Literal["EPSG:4326"] = Field("EPSG:4326", description="Coordinate reference system of lat/lon.")
    accuracy_m: float = Field(ge=0, description="Estimated horizontal error radius in metres.")
    grid_cell: GridCode | None = Field(None, description="Unit grid containing the point, if any grid covers it.")


class ImageBox(_Strict):
    """An axis-aligned box in the camera image, in pixels of the analysed frame."""

    x1: float = Field(ge=0)
    y1: float = Field(ge=0)
    x2: float = Field(ge=0)
    y2: float = Field(ge=0)
    image_width: int = Field(gt=0)
    image_height: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ImageBox:
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError("box corners must satisfy x1 <= x2 and y1 <= y2")
        return self


class TrackedObject(_Strict):
    """One tracked object that takes part in the incident (the car, the person, the bag...)."""

    track_id: int = Field(ge=0)
    class_name: str = Field(min_length=1, max_length=64)
    confidence: float = Field(ge=0, le=1)
    role: str = Field("subject", max_length=32, description="subject | owner | context")
    box: ImageBox | None = None
    area_m2: float | None = Field(
        None, ge=0, le=10_000,
        description="Ground area in square metres of a scene-change region (calibrated cameras); null otherwise.",
    )


class ModelRef(_Strict):
    """Which detector produced the detections (for audits and for regressions after a model update)."""

    name: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class EvidenceRef(_Strict):
    """A piece of evidence sent separately (the evidence topic) or stored at a URI."""

    kind: Literal["snapshot", "clip"]
    content_type: str = Field(max_length=64, description="MIME type, e.g. image/jpeg.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    uri: str | None = Field(None, max_length=1024, description="Where to fetch it, if stored outside MQTT.")


class IncidentEvent(_Strict):
    """One message about one incident: its start, an update, or its end."""

    schema_version: SchemaVersion = Field(
        SCHEMA_VERSION, description="Wire-format version. 1.1 added end_reason; 1.0 events are still accepted."
    )
    event_id: uuid.UUID = Field(description="Unique per message; the idempotency key.")
    incident_id: str = Field(
        min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$", description="Stable over one incident."
    )
    seq: int = Field(ge=0, le=MAX_SEQ, description="Message number within the incident (0 = started).")
    type: IncidentTypeName = Field(description="Incident type, one of the registered types (pipelines registry).")
    phase: Phase
    site_id: Ident
    gateway_id: Ident
    camera_id: Ident
    zone: str | None = Field(None, max_length=64, description="Name of the zone the rule fired in.")
    started_at: datetime = Field(description="Capture time (UTC) at which the incident's condition held.")
    observed_at: datetime = Field(description="Capture time (UTC) of the frame this message describes.")
    ended_at: datetime | None = Field(None, description="Capture time (UTC) of the end, for phase=ended.")
    end_reason: EndReason | None = Field(
        None,
        description=(
            "Why the incident ended. Required when phase is 'ended' (schema 1.1), absent otherwise. "
            "'gone': the camera saw it leave (unseen for the absence grace, or not found again after a restart); "
            "'shutdown': the gateway stopped; 'source_ended': the video file or clip ended; 'stream_lost': the "
            "camera stream failed beyond recovery. Only 'gone' is evidence that the scene cleared."
        ),
    )
    dwell_s: float = Field(
        ge=0, le=MAX_DWELL_S, description="Seconds the condition has held, from capture timestamps (at most a year)."
    )
    confidence: float = Field(ge=0, le=1)
    location: GeoLocation | None = Field(None, description="None when the camera is not calibrated.")
    box: ImageBox
    objects: list[TrackedObject] = Field(default_factory=list, max_length=64)
    model: ModelRef
    evidence: list[EvidenceRef] = Field(default_factory=list, max_length=16)

    @field_validator("started_at", "observed_at", "ended_at")
    @classmethod
    def _aware_utc(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return v
        if v.tzinfo is None:
            raise ValueError("timestamps must carry a timezone (use UTC, e.g. 2026-01-01T00:00:00Z)")
        v = v.astimezone(timezone.utc)
        if not EARLIEST <= v < LATEST:
            raise ValueError(f"timestamp {v.isoformat()} is outside {EARLIEST.year}-{LATEST.year - 1}")
        return v

    @model_validator(mode="after")
    def _phase_consistent(self) -> IncidentEvent:
        if self.phase == "ended" and self.ended_at is None:
            raise ValueError("phase 'ended' needs ended_at")
        if self.phase != "ended" and self.ended_at is not None:
            raise ValueError("ended_at is only set when phase is 'ended'")
        if self.phase != "ended" and self.end_reason is not None:
            raise ValueError("end_reason is only set when phase is 'ended'")
        if self.schema_version == "1.0" and self.end_reason is not None:
            raise ValueError("end_reason is a schema 1.1 field; send schema_version '1.1'")
        if self.schema_version != "1.0" and self.phase == "ended" and self.end_reason is None:
            raise ValueError("phase 'ended' needs end_reason (gone, shutdown, source_ended or stream_lost)")
        if self.observed_at < self.started_at:
            raise ValueError("observed_at is before started_at")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, payload: bytes | str) -> IncidentEvent:
        """`model_validate_json(payload)`: the same event, or the same `ValidationError`, faster for the usual payload.

        The control-character check (`_Strict._plain_text`) is a Python call for each of some 35 fields, about
        40 % of the validation (issue 8: central validates every message it receives). A JSON string can only
        hold a control character as an escape (`\\n`, `\\u0000`: a backslash) or as a raw DEL byte; the JSON parser
        refuses raw C0 controls. So a payload with neither cannot fail that check, and is validated without it
        (`_plain_validator`: the model's own schema minus those calls, building the same classes); any other
        payload, and any payload that fails, goes through the model itself, so errors are the model's.
        """
        fast = _plain_validator() if cls is IncidentEvent else None
        if isinstance(payload, str):
            escaped = "\\" in payload or "\x7f" in payload
        else:
            escaped = b"\\" in payload or b"\x7f" in payload
        if fast is None or escaped:
            return cls.model_validate_json(payload)
        try:
            return cast(IncidentEvent, fast.validate_json(payload))
        except ValidationError:
            return cls.model_validate_json(payload)  # raises the model's own error


@cache
def _plain_validator() -> SchemaValidator | None:
    """`IncidentEvent`'s validator without the `_Strict._plain_text` calls (see `IncidentEvent.from_json`); None if
    the schema holds none to take out (a pydantic that builds schemas differently: then nothing is skipped)."""
    plain_text = _Strict.__dict__["_plain_text"].__func__
    taken = [0]

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            function = node.get("function")
            if (node.get("type") == "function-after" and isinstance(function, dict)
                    and getattr(function.get("function"), "__func__", None) is plain_text):
                taken[0] += 1
                return strip(node["schema"])
            return {key: strip(value) for key, value in node.items()}
        if isinstance(node, list):
            return [strip(value) for value in node]
        return node

    schema = strip(IncidentEvent.__pydantic_core_schema__)
    return SchemaValidator(schema) if taken[0] else None


def event_json_schema() -> dict[str, object]:
    """The JSON Schema of `IncidentEvent` as committed in `wire/incident_event.schema.json`."""
    schema = IncidentEvent.model_json_schema()
    schema["$id"] = f"https://gridwatch.invalid/schemas/incident-event/{SCHEMA_VERSION}.json"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def event_json_schema_text() -> str:
    return json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n"
