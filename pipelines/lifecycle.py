"""The started / updated / ended life of incidents, shared by every rule.

A rule decides, per frame, which tracks currently satisfy its condition (a `Hit`); `IncidentBook` turns that
into messages:

- a hit on a track without an open incident opens one (`started`), unless an open incident of this rule whose
  subject is not visible overlaps it: then the track is re-attached (the tracker lost the car behind a bus and
  gave it a new id; it is still the same incident);
- an open incident is refreshed by its hits and sends `updated` at most every `update_every_s`;
- an open incident without a hit for `end_after_s` of capture time is `ended` (the camera sees it gone);
- `flush` ends everything (shutdown), so no incident stays open forever on the central side.

The book holds only open incidents, so its memory is bounded by what is on screen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gridwatch.pipelines.types import Box, IncidentUpdate, ObjectRef, Phase, Point


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


def box_iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class IncidentBook:
    """Open incidents of one rule on one camera.

    id_prefix: makes incident ids unique across cameras and restarts (the edge passes camera id + run id).
    update_every_s: how often an open incident re-sends its state (dwell, box). Lower = fresher central view,
        more messages.
    end_after_s: how long an incident may go unseen before it is ended. Covers occlusion and missed detections;
        too low splits one incident into several, too high delays verification.
    reattach_iou: overlap needed to hand an open incident to a new track id.
    """

    incident_type: str
    id_prefix: str
    update_every_s: float = 10.0
    end_after_s: float = 5.0
    reattach_iou: float = 0.3
    _open: dict[str, _Open] = field(default_factory=dict)
    _counter: int = 0

    def step(self, hits: Iterable[Hit], ts: float) -> list[IncidentUpdate]:
        """Feed this frame's hits; return the messages they cause, in order."""
        out: list[IncidentUpdate] = []
        seen: set[str] = set()
        hits = list(hits)
        visible = {h.track_id for h in hits}
        for hit in hits:
            inc = self._find(hit, visible)
            if inc is None:
                inc = self._start(hit)
                out.append(self._message(inc, "started", ts))
            else:
                self._refresh(inc, hit, ts)
                if ts - inc.last_sent_ts >= self.update_every_s and inc.incident_id not in seen:
                    out.append(self._message(inc, "updated", ts))
            seen.add(inc.incident_id)
        out.extend(self._expire(ts))
        return out

    def flush(self, ts: float) -> list[IncidentUpdate]:
        ended = [self._message(inc, "ended", ts) for inc in self._open.values()]
        self._open.clear()
        return ended

    def continuing_at(self, track_id: int, box: Box, visible: set[int]) -> float | None:
        """started_ts of the open incident this object is still part of, if any.

        That is an incident at the same place (`box` overlaps where the incident began) that either already
        holds this track, or whose own tracks are not visible now. A rule asks this before making a track wait
        a whole dwell: the parked car that a passing bus hid is still the same incident when it re-appears under
        a new track id, even before it has been seen long enough to count as "still" again.
        """
        for inc in self._open.values():
            mine = track_id in inc.track_ids
            if (mine or not (inc.track_ids & visible)) and box_iou(inc.first_box, box) >= self.reattach_iou:
                return inc.started_ts
        return None

    def _find(self, hit: Hit, visible: set[int]) -> _Open | None:
        for inc in self._open.values():
            if hit.track_id in inc.track_ids:
                return inc
        for inc in self._open.values():
            subject_gone = not (inc.track_ids & visible)
            if subject_gone and box_iou(inc.hit.box, hit.box) >= self.reattach_iou:
                inc.track_ids.add(hit.track_id)
                return inc
        return None

    def _start(self, hit: Hit) -> _Open:
        self._counter += 1
        iid = f"{self.id_prefix}-{self.incident_type}-{self._counter:05d}"
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
        return [self._message(inc, "ended", inc.last_hit_ts) for inc in done]

    def _message(self, inc: _Open, phase: Phase, ts: float) -> IncidentUpdate:
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
        )
