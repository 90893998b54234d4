"""The started / updated / ended life of incidents, shared by every rule.

A rule decides, per frame, which tracks currently satisfy its condition (a `Hit`); `IncidentBook` turns that
into messages:

- a hit on a track without an open incident opens one (`started`), unless an open incident of this rule whose
  subject is not visible is at the same place (the boxes overlap, or the new box lies inside the incident's):
  then the track is re-attached (the tracker lost the car behind a bus and gave it a new id, or a cable lost
  while the view could not be registered is re-found in pieces; it is still the same incident);
- an open incident is refreshed by its hits and sends `updated` at most every `update_every_s`;
- an open incident without a hit for `end_after_s` of capture time is `ended` with reason `gone` (the camera
  sees it gone);
- `flush(ts, reason)` ends everything with the reason the camera stopped watching (`shutdown`, `source_ended`,
  `stream_lost`), so no incident stays open forever on the central side, and the central side knows that the
  end is no evidence that the scene cleared.

Restarts: `export` returns the incidents the book was watching (also those just ended by `flush`); a new book
takes them back with `restore` as *pending*. A hit of the same type at the same place (box overlap, or ground
distance when calibrated) within `resume_grace_s` of the restore continues the pending incident: same id, `seq`
above the last one sent, the original `started_ts`, phase `updated`. A pending incident not found again within
the grace ends with reason `gone`: the camera, watching again, sees it gone.

Incident ids are `{id_prefix}-{type}-{token}`; `new_token` makes the token (the edge injects a random one so ids
are unique across restarts and not guessable; the default counter keeps tests deterministic).

The book holds only open and pending incidents, so its memory is bounded by what is on screen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gridwatch.pipelines.types import Box, EndReason, IncidentUpdate, ObjectRef, OpenIncident, Phase, Point

TokenFactory = Callable[[], str]
"""Makes the unique part of a new incident id (letters, digits, '_', '.', '-')."""


@dataclass(frozen=True)
class Hit:
    """One track satisfying a rule on this frame."""

    track_id: int
    since_ts: float
    confidence: float
    box: Box
    anchor: Point
    ground: Point | None
    zone: str | None
    objects: tuple[ObjectRef, ...]


@dataclass
class _Open:
    incident_id: str
    track_ids: set[int]
    started_ts: float
    last_hit_ts: float
    last_sent_ts: float
    seq: int
    hit: Hit
    conf_max: float
    first_box: Box


@dataclass
class _Pending:
    inc: _Open
    restored_ts: float
    deadline_ts: float


REATTACH_INSIDE = 0.8
"""Share of a new box inside an object's box that makes it a part of that object (`IncidentBook.reattach_inside`)."""


def _intersection(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def box_iou(a: Box, b: Box) -> float:
    inter = _intersection(a, b)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def inside_fraction(part: Box, whole: Box) -> float:
    """How much of `part`'s area lies inside `whole` (1.0: wholly inside)."""
    area = (part[2] - part[0]) * (part[3] - part[1])
    return _intersection(part, whole) / area if area > 0 else 0.0


@dataclass
class IncidentBook:
    """Open incidents of one rule on one camera.

    id_prefix: makes incident ids unique across cameras (the edge passes the camera id).
    update_every_s: how often an open incident re-sends its state (dwell, box). Lower = fresher central view,
        more messages.
    end_after_s: how long an incident may go unseen before it is ended. Covers occlusion and missed detections;
        too low splits one incident into several, too high delays verification.
    reattach_iou: overlap needed to hand an open incident to a new track id, or to continue a restored one.
    reattach_inside: or the share of the new box that lies inside the incident's box: the part of a parked car
        that a bus leaves visible, or a piece of a cable re-found after the view was lost, continues the incident
        (their IoU with the whole is small).
    resume_distance_m: on a calibrated camera, a restored incident also continues when the new object's ground
        point is this close to where it was last seen (boxes of small far objects overlap poorly).
    resume_grace_s: how long after `restore` a restored incident waits to be found again before it ends as
        `gone`; None = `end_after_s`. It must cover the time a rule needs before it can report an object at all
        (zone entry debounce, stillness window), little more: a longer grace only delays the end of what left.
    new_token: makes the unique part of new incident ids; None = a counter (deterministic, for tests).
    """

    incident_type: str
    id_prefix: str
    update_every_s: float = 10.0
    end_after_s: float = 5.0
    reattach_iou: float = 0.3
    reattach_inside: float = REATTACH_INSIDE
    resume_distance_m: float = 2.0
    resume_grace_s: float | None = None
    new_token: TokenFactory | None = None
    _open: dict[str, _Open] = field(default_factory=dict)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _suspended: dict[str, _Open] = field(default_factory=dict)
    _counter: int = 0

    def step(self, hits: Iterable[Hit], ts: float) -> list[IncidentUpdate]:
        """Feed this frame's hits; return the messages they cause, in order."""
        out: list[IncidentUpdate] = []
        seen: set[str] = set()
        hits = list(hits)
        visible = {h.track_id for h in hits}
        self._suspended.clear()
        joined: set[int] = set()  # tracks re-attached on this frame: two pieces of one lost object may come back
        for hit in hits:
            inc = self._find(hit, visible - joined, joined)
            if inc is None and (inc := self._resume(hit)) is not None:
                self._refresh(inc, hit, ts)
                out.append(self._message(inc, "updated", ts))
            elif inc is None:
                inc = self._start(hit)
                out.append(self._message(inc, "started", ts))
            else:
                self._refresh(inc, hit, ts)
                if ts - inc.last_sent_ts >= self.update_every_s and inc.incident_id not in seen:
                    out.append(self._message(inc, "updated", ts))
            seen.add(inc.incident_id)
        out.extend(self._expire(ts))
        return out

    def flush(self, ts: float, reason: EndReason) -> list[IncidentUpdate]:
        """End every open incident because the camera stops watching (`reason`); `export` still returns them.

        Restored incidents not yet found again stay pending (they were already ended when they were exported)
        and are exported again.
        """
        ended = [self._message(inc, "ended", ts, reason) for inc in self._open.values()]
        self._suspended.update(self._open)
        self._open.clear()
        return ended

    def export(self) -> list[OpenIncident]:
        """The incidents this book watches or watched until `flush`, and those restored but not yet re-found."""
        incs = [*self._open.values(), *self._suspended.values(), *(p.inc for p in self._pending.values())]
        return [self._record(inc) for inc in incs]

    def restore(self, records: Iterable[OpenIncident], ts: float) -> None:
        """Take back exported incidents as pending, from capture time `ts` on (see the module docstring)."""
        grace = self.end_after_s if self.resume_grace_s is None else self.resume_grace_s
        for r in records:
            if r.type != self.incident_type or r.incident_id in self._open:
                continue
            hit = Hit(-1, r.started_ts, r.confidence, r.box, r.anchor, r.ground, r.zone, ())
            inc = _Open(r.incident_id, set(), r.started_ts, r.last_ts, r.last_ts, r.seq, hit, r.confidence,
                        r.first_box)
            self._pending[r.incident_id] = _Pending(inc, ts, ts + grace)

    def continuing_at(self, track_id: int, box: Box, visible: set[int]) -> float | None:
        """started_ts of the open incident this object is still part of, if any.

        That is an incident at the same place (`box` overlaps where the incident began) that either already
        holds this track, or whose own tracks are not visible now. A rule asks this before making a track wait
        a whole dwell: the parked car that a passing bus hid is still the same incident when it re-appears under
        a new track id, even before it has been seen long enough to count as "still" again.
        """
        for inc in self._open.values():
            mine = track_id in inc.track_ids
            if (mine or not (inc.track_ids & visible)) and self._same_place(box, inc.first_box):
                return inc.started_ts
        return None

    def resuming_at(self, box: Box, ground: Point | None) -> float | None:
        """started_ts of the restored (pending) incident at this place, if any.

        A rule asks this for an object that satisfies its condition except for the dwell (the object is still,
        in the zone, unattended...): after a restart the dwell has already been served, so it must not be
        served again. A rule must not ask it for moving objects: a car driving over the spot is not the car
        that was parked there.
        """
        pending = self._pending_at(box, ground)
        return pending.inc.started_ts if pending else None

    def _pending_at(self, box: Box, ground: Point | None) -> _Pending | None:
        """The restored incident at this place, if any: the box overlaps where it was, or its ground point is near."""
        for p in self._pending.values():
            inc = p.inc
            if max(box_iou(inc.first_box, box), box_iou(inc.hit.box, box)) >= self.reattach_iou:
                return p
            last = inc.hit.ground
            if ground is not None and last is not None and math.dist(ground, last) <= self.resume_distance_m:
                return p
        return None

    def _resume(self, hit: Hit) -> _Open | None:
        """Continue the restored incident at the hit's place (same id, seq and started_ts), if there is one."""
        pending = self._pending_at(hit.box, hit.ground)
        if pending is None:
            return None
        inc = pending.inc
        del self._pending[inc.incident_id]
        inc.track_ids = {hit.track_id}
        self._open[inc.incident_id] = inc
        return inc

    def _find(self, hit: Hit, visible: set[int], joined: set[int]) -> _Open | None:
        """The open incident `hit` belongs to: the one holding its track, else one at the same place whose own
        tracks are out of sight (`visible` leaves out the tracks re-attached on this frame)."""
        for inc in self._open.values():
            if hit.track_id in inc.track_ids:
                return inc
        for inc in self._open.values():
            subject_gone = not (inc.track_ids & visible)
            if subject_gone and (self._same_place(hit.box, inc.hit.box) or self._same_place(hit.box, inc.first_box)):
                inc.track_ids.add(hit.track_id)
                joined.add(hit.track_id)
                return inc
        return None

    def _same_place(self, box: Box, incident_box: Box) -> bool:
        return (box_iou(incident_box, box) >= self.reattach_iou
                or inside_fraction(box, incident_box) >= self.reattach_inside)

    def _start(self, hit: Hit) -> _Open:
        self._counter += 1
        token = self.new_token() if self.new_token else f"{self._counter:05d}"
        iid = f"{self.id_prefix}-{self.incident_type}-{token}"
        inc = _Open(iid, {hit.track_id}, hit.since_ts, hit.since_ts, hit.since_ts, -1, hit, hit.confidence, hit.box)
        self._open[iid] = inc
        return inc

    def _refresh(self, inc: _Open, hit: Hit, ts: float) -> None:
        inc.hit = hit
        inc.last_hit_ts = ts
        inc.conf_max = max(inc.conf_max, hit.confidence)

    def _expire(self, ts: float) -> list[IncidentUpdate]:
        done = [inc for inc in self._open.values() if ts - inc.last_hit_ts > self.end_after_s]
        for inc in done:
            del self._open[inc.incident_id]
        out = [self._message(inc, "ended", inc.last_hit_ts, "gone") for inc in done]
        lost = [p for p in self._pending.values() if ts > p.deadline_ts]
        for p in lost:
            del self._pending[p.inc.incident_id]
        return out + [self._message(p.inc, "ended", p.restored_ts, "gone") for p in lost]

    def _record(self, inc: _Open) -> OpenIncident:
        hit = inc.hit
        return OpenIncident(inc.incident_id, self.incident_type, inc.seq, inc.started_ts, inc.last_hit_ts,
                            hit.zone, inc.conf_max, inc.first_box, hit.box, hit.anchor, hit.ground)

    def _message(self, inc: _Open, phase: Phase, ts: float, reason: EndReason | None = None) -> IncidentUpdate:
        inc.seq += 1
        if phase != "ended":
            inc.last_sent_ts = ts
            inc.last_hit_ts = max(inc.last_hit_ts, ts)
        hit = inc.hit
        return IncidentUpdate(
            incident_id=inc.incident_id,
            type=self.incident_type,
            phase=phase,
            seq=inc.seq,
            zone=hit.zone,
            started_ts=inc.started_ts,
            ts=max(ts, inc.started_ts),
            dwell_s=max(0.0, ts - inc.started_ts),
            confidence=inc.conf_max,
            box=hit.box,
            anchor=hit.anchor,
            ground=hit.ground,
            objects=hit.objects,
            end_reason=reason,
        )
