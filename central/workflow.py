"""The case workflow: statuses are data (strings), transitions live in one small function.

Only the video-discovery part of the closed loop exists so far:

- intake: a new case is `reported`; when its category has `auto_file`, it goes straight to `filed`.
- the incident ended on camera: `reported` / `filed` -> `resolved_on_camera`.

Later steps (dispatch confirmation, handling, verification, returned/extension/deferred paths) are new rows in
`TRANSITIONS`, not new code paths.
"""

from __future__ import annotations

REPORTED = "reported"
FILED = "filed"
RESOLVED_ON_CAMERA = "resolved_on_camera"

STATUSES: tuple[str, ...] = (REPORTED, FILED, RESOLVED_ON_CAMERA)

# (current status, trigger) -> next status. `None` is "no case yet".
TRANSITIONS: dict[tuple[str | None, str], str] = {
    (None, "intake"): REPORTED,
    (REPORTED, "auto_file"): FILED,
    (REPORTED, "ended"): RESOLVED_ON_CAMERA,
    (FILED, "ended"): RESOLVED_ON_CAMERA,
}


def next_status(current: str | None, trigger: str) -> str | None:
    """The status after `trigger`, or None when the trigger does not apply in `current`."""
    return TRANSITIONS.get((current, trigger))
