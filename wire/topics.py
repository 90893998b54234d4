"""The MQTT topic tree, one function per topic (prefix configurable, default `gridwatch/v1`).

| topic | from -> to | payload |
|---|---|---|
| `{prefix}/{site}/{camera}/incident` | edge -> central | `IncidentEvent` JSON |
| `{prefix}/{site}/{camera}/evidence` | edge -> central | JPEG (MQTT 5 properties) or a JSON envelope (3.1.1) |
| `{prefix}/{site}/{gateway}/status` | edge -> all | retained health JSON, Last Will `offline` |
| `{prefix}/dispatch/{cleaner}` | central -> cleaner app | `CaseAssignment` JSON |
| `{prefix}/{site}/{gateway}/control` | central -> edge | model update, config reload |
"""

from __future__ import annotations

DEFAULT_PREFIX = "gridwatch/v1"


def incident_topic(prefix: str, site: str, camera: str) -> str:
    return f"{prefix}/{site}/{camera}/incident"


def evidence_topic(prefix: str, site: str, camera: str) -> str:
    return f"{prefix}/{site}/{camera}/evidence"


def status_topic(prefix: str, site: str, gateway: str) -> str:
    return f"{prefix}/{site}/{gateway}/status"


def dispatch_topic(prefix: str, cleaner: str) -> str:
    return f"{prefix}/dispatch/{cleaner}"


def control_topic(prefix: str, site: str, gateway: str) -> str:
    return f"{prefix}/{site}/{gateway}/control"
