"""Who may say what: each message is bound to its topic, its gateway's site and its case (issue 8).

The broker's ACL lets a gateway account write only topics whose gateway level is its username
(`deploy/mosquitto/acl`), so the topic says which account sent a message. Central then checks, before anything
is stored:

- the topic has the shape `{prefix}/{site}/{gateway}/{camera}/{incident|evidence}` and the payload names the
  same site, gateway and camera;
- the gateway id is not an account of another kind (a cleaner in the roster, central itself);
- a gateway stays in the site it was first seen in (`gateways` table; trust on first use);
- an incident stays with the site, gateway and camera that opened its case;
- `seq` grows plausibly: at most `SEQ_SLACK` plus `MAX_MESSAGES_PER_S` per second of wall time since central
  last applied a message of the case. Before, one forged `ended` with `seq = 2**62` closed a case and made every
  later real update stale.

Every failed check is a `TrustError` whose text becomes the dead letter's reason. Pure apart from the
`gateways` table lookup.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from gridwatch.central.store import Case, CaseDraft, GatewayRow
from gridwatch.errors import GridwatchError
from gridwatch.wire.topics import EdgeKind, EdgeTopic, parse_edge_topic

MAX_INCIDENT_BYTES = 64 * 1024
MAX_EVIDENCE_BYTES = 4 * 1024 * 1024
SEQ_SLACK = 16
MAX_MESSAGES_PER_S = 10.0
RESERVED_ACCOUNTS = frozenset({"gridwatch-central"})


class TrustError(GridwatchError, ValueError):
    """A message that some account was not entitled to send (the reason is kept on its dead letter)."""


def check_size(payload: bytes, limit: int, what: str) -> None:
    if len(payload) > limit:
        raise TrustError(f"{what} of {len(payload)} bytes is over the {limit}-byte limit")


def edge_topic(prefix: str, topic: str, kind: EdgeKind) -> EdgeTopic:
    """The topic's levels; a `TrustError` for any other shape or kind."""
    parsed = parse_edge_topic(prefix, topic)
    if parsed is None or parsed.kind != kind:
        raise TrustError(f"topic {topic[:200]!r} is not {prefix}/{{site}}/{{gateway}}/{{camera}}/{kind}")
    return parsed


def check_matches_topic(topic: EdgeTopic, site: str, gateway: str, camera: str) -> None:
    """The payload must name the site, gateway and camera its topic (and so its account) names."""
    said, sent = (site, gateway, camera), (topic.site, topic.gateway, topic.camera)
    if said != sent:
        raise TrustError(f"payload says site/gateway/camera {'/'.join(said)} but it came on "
                         f"{'/'.join(sent)}")


def check_account(gateway: str, cleaners: frozenset[str]) -> None:
    """A cleaner's or central's account is never a gateway, whatever the ACL lets it write."""
    if gateway in cleaners or gateway in RESERVED_ACCOUNTS:
        raise TrustError(f"gateway id {gateway!r} is a cleaner or central account, not a gateway")


def bind_gateway(session: Session, topic: EdgeTopic, now: datetime) -> None:
    """Remember the site a gateway is first seen in; refuse it in any other site later."""
    row = session.get(GatewayRow, topic.gateway)
    if row is None:
        row = GatewayRow(gateway_id=topic.gateway, site_id=topic.site, first_seen=now)
        session.add(row)
    # the session's identity map holds rows weakly: keep this one for the session (a batch of messages), so the
    # next message of the gateway finds it there instead of reading it again
    session.info.setdefault("gateway_rows", {})[topic.gateway] = row
    if row.site_id != topic.site:
        raise TrustError(f"gateway {topic.gateway!r} belongs to site {row.site_id!r}, not {topic.site!r}")


def check_case_owner(case: Case | CaseDraft, topic: EdgeTopic) -> None:
    """Only the gateway camera that opened a case may update it (or send its evidence)."""
    owner = (case.site_id, case.gateway_id, case.camera_id)
    if owner != (topic.site, topic.gateway, topic.camera):
        raise TrustError(f"incident {case.incident_id} belongs to {'/'.join(owner)}, not "
                         f"{topic.site}/{topic.gateway}/{topic.camera}")


def check_seq_plausible(seq: int, case: Case | CaseDraft, now: datetime) -> None:
    """A `seq` may run ahead of the case by the messages the elapsed wall time allows, no more."""
    elapsed = max(0.0, (now - case.updated_at).total_seconds())
    allowed = case.last_seq + SEQ_SLACK + int(MAX_MESSAGES_PER_S * elapsed)
    if seq > allowed:
        raise TrustError(f"seq {seq} jumps implausibly past the case's seq {case.last_seq} "
                         f"(at most {allowed} after {elapsed:.0f} s)")
