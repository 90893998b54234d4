"""Case assignment messages sent to the responsible cleaner's app.

Published on `{prefix}/dispatch/{cleaner}` with QoS 1 when a case is created (and filed, if its category
auto-files). The payload is `CaseAssignment` JSON; `assignment_id` lets the app deduplicate a redelivery.
"""

from __future__ import annotations

from datetime import datetime

from gridwatch.central.store import Case
from gridwatch.wire.assignment import CaseAssignment
from gridwatch.wire.topics import dispatch_topic


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
