"""Case assignment messages sent to the responsible cleaner's app.

Published on `{prefix}/dispatch/{cleaner}` with QoS 1 when a case is created (and filed, if its category
auto-files). The payload is `CaseAssignment` JSON; `assignment_id` lets the app deduplicate a redelivery.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from central.store import Case
from gridwatch.mqttutil import dispatch_topic

ASSIGNMENT_SCHEMA_VERSION: Literal["1.0"] = "1.0"


class CaseAssignment(BaseModel):
    """What a cleaner's app needs to go and handle a case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal["1.0"] = ASSIGNMENT_SCHEMA_VERSION
    assignment_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Unique per message.")
    case_number: str
    incident_id: str
    status: str
    type: str
    category_code: str | None
    category_name: str | None
    category_version: str | None
    cleaner: str
    grid_cell: str | None
    site_id: str
    camera_id: str
    zone: str | None
    lat: float | None = Field(description="WGS-84 latitude.")
    lon: float | None = Field(description="WGS-84 longitude.")
    accuracy_m: float | None
    started_at: datetime
    snapshot_sha256: str | None
    assigned_at: datetime


def build_assignment(case: Case, assigned_at: datetime) -> CaseAssignment:
    """The assignment message for `case` (its current state)."""
    return CaseAssignment(
        case_number=case.case_number,
        incident_id=case.incident_id,
        status=case.status,
        type=case.type,
        category_code=case.category_code,
        category_name=case.category_name,
        category_version=case.category_version,
        cleaner=case.cleaner,
        grid_cell=case.grid_cell,
        site_id=case.site_id,
        camera_id=case.camera_id,
        zone=case.zone,
        lat=case.lat,
        lon=case.lon,
        accuracy_m=case.accuracy_m,
        started_at=case.started_at,
        snapshot_sha256=case.snapshot_sha256,
        assigned_at=assigned_at,
    )


def assignment_topic(prefix: str, assignment: CaseAssignment) -> str:
    """The topic the assignment is published on."""
    return dispatch_topic(prefix, assignment.cleaner)
