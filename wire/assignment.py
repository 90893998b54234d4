"""The case-assignment message central sends to the responsible cleaner's app.

Published on `{prefix}/dispatch/{cleaner}` with QoS 1. `assignment_id` is the idempotency key: the app
deduplicates a redelivery by it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
