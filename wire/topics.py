"""The MQTT topic tree, one function per topic (prefix configurable, default `gridwatch/v1`).

| topic | from -> to | payload |
|---|---|---|
| `{prefix}/{site}/{gateway}/{camera}/incident` | edge -> central | `IncidentEvent` JSON |
| `{prefix}/{site}/{gateway}/{camera}/evidence` | edge -> central | JPEG (MQTT 5 properties) or a JSON envelope |
| `{prefix}/{site}/{gateway}/status` | edge -> all | retained health JSON, Last Will `offline` |
| `{prefix}/dispatch/{cleaner}` | central -> cleaner app | `CaseAssignment` JSON |
| `{prefix}/ack/{cleaner}` | cleaner app -> central | the cleaner's acknowledgements |
| `{prefix}/{site}/{gateway}/control` | central -> edge | model update, config reload |
| `{prefix}/{site}/{gateway}/receipt` | central -> edge | event ids central committed (`gridwatch.wire.receipts`) |

The gateway id is a level of every topic a gateway writes, so the broker's ACL can pin a gateway account to its
own topics (`pattern write gridwatch/v1/+/%u/+/incident`, username = gateway id) and central can check that the
topic and the payload name the same site, gateway and camera (`parse_edge_topic`). Until issue 8 the incident
and evidence topics had no gateway level, and any account could write any camera's incidents.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

DEFAULT_PREFIX = "gridwatch/v1"

EdgeKind = Literal["incident", "evidence"]
EDGE_KINDS: tuple[EdgeKind, ...] = ("incident", "evidence")


def incident_topic(prefix: str, site: str, gateway: str, camera: str) -> str:
    return f"{prefix}/{site}/{gateway}/{camera}/incident"


def evidence_topic(prefix: str, site: str, gateway: str, camera: str) -> str:
    return f"{prefix}/{site}/{gateway}/{camera}/evidence"


def edge_filter(prefix: str, kind: EdgeKind, site: str = "+") -> str:
    """The subscription filter for every gateway's incident (or evidence) messages, of one site or all (`+`)."""
    return f"{prefix}/{site}/+/+/{kind}"


def status_topic(prefix: str, site: str, gateway: str) -> str:
    return f"{prefix}/{site}/{gateway}/status"


def dispatch_topic(prefix: str, cleaner: str) -> str:
    return f"{prefix}/dispatch/{cleaner}"


def ack_topic(prefix: str, cleaner: str) -> str:
    return f"{prefix}/ack/{cleaner}"


def control_topic(prefix: str, site: str, gateway: str) -> str:
    return f"{prefix}/{site}/{gateway}/control"


def receipt_topic(prefix: str, site: str, gateway: str) -> str:
    """Central's receipts for one gateway: the incident and evidence messages it has durably committed. The
    gateway reads only its own (ACL `pattern read {prefix}/+/%u/receipt`); only central writes them."""
    return f"{prefix}/{site}/{gateway}/receipt"


@dataclass(frozen=True)
class EdgeTopic:
    """The levels of an incident or evidence topic: who the broker let write it."""

    site: str
    gateway: str
    camera: str
    kind: EdgeKind


@lru_cache(maxsize=4096)
def parse_edge_topic(prefix: str, topic: str) -> EdgeTopic | None:
    """`EdgeTopic` for `{prefix}/{site}/{gateway}/{camera}/{incident|evidence}`, else None (any other shape).

    Remembered for the last 4,096 topics (a gateway's few topics carry all its messages; central looks each one
    up twice per message); a flood of distinct topics only makes lookups miss."""
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        return None
    levels = topic[len(head):].split("/")
    if len(levels) != 4 or not all(levels):
        return None
    site, gateway, camera, kind = levels
    if kind == "incident":
        return EdgeTopic(site, gateway, camera, "incident")
    if kind == "evidence":
        return EdgeTopic(site, gateway, camera, "evidence")
    return None
