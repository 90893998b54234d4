"""The edge's view of the wire contract: `IncidentEvent` and its parts, re-exported from `gridwatch.wire.events`.

The contract lives in `gridwatch.wire` (below edge and central); this module exists so edge code and users who
think "the events the edge sends" find it here too. Nothing is defined here.
"""

from __future__ import annotations

from gridwatch.wire.events import (
    INCIDENT_TYPES,
    SCHEMA_VERSION,
    EvidenceRef,
    GeoLocation,
    ImageBox,
    IncidentEvent,
    ModelRef,
    TrackedObject,
    event_json_schema,
    event_json_schema_text,
)

__all__ = [
    "INCIDENT_TYPES",
    "SCHEMA_VERSION",
    "EvidenceRef",
    "GeoLocation",
    "ImageBox",
    "IncidentEvent",
    "ModelRef",
    "TrackedObject",
    "event_json_schema",
    "event_json_schema_text",
]
