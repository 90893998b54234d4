"""The case workflow: statuses are data (strings), transitions live in one small function.

Only the video-discovery part of the closed loop exists so far:

- intake: a new case is `reported`; when its category has `auto_file`, it goes straight to `filed`.
- the camera saw the incident end (`ended` with end_reason `gone`): `reported` / `filed` -> `resolved_on_camera`.
  An `ended` for any other reason (`shutdown`, `source_ended`, `stream_lost`, or none given by a 1.0 gateway)
  says the camera stopped watching, not that the scene cleared: it is no trigger, the status stays.

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


def end_trigger(end_reason: str | None) -> str | None:
    """The trigger an `ended` message fires: `ended` only when the camera saw the incident go."""
    return "ended" if end_reason == "gone" else None


def next_status(current: str | None, trigger: str) -> str | None:
    """The status after `trigger`, or None when the trigger does not apply in `current`."""
    return TRANSITIONS.get((current, trigger))
