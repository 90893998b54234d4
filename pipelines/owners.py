"""Who put this object here? A short, bounded memory of where people were, to find an object's owner.

A scene-change region appears some seconds after the drop: the stage needs the thing to stay still for its
`min_static_s` first, and by then the person who set it down may have walked on. So the owner is looked up in
the recent past: the person who was within the owner radius of the object's place around the moment it was put
down (the region's first appearance minus its age, when the stage says how old it is), up to `lookback_s`
before its first appearance. The same memory tells when the owner last stood near it: when they left.

Distances are metres when both the object and the person have ground points, otherwise pixels measured in
multiples of the person's box height (`*_rel`), so a far person and a near one are judged alike.

Pure and bounded: samples older than `keep_s` are dropped on every `record`, and so are people not seen since.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from gridwatch.pipelines.types import ObjectRef, Observation, Point


@dataclass(frozen=True)
class OwnerParams:
    """owner_radius_*: a person this close to a new object owns it; leave_distance_*: beyond this the owner has
    left it. lookback_s: how far before the object's first appearance its owner is looked for."""

    owner_radius_m: float
    leave_distance_m: float
    lookback_s: float
    owner_radius_rel: float = 1.0
    leave_distance_rel: float = 2.0


@dataclass(frozen=True)
class _Seen:
    ts: float
    anchor: Point
    ground: Point | None
    height_px: float
    ref: ObjectRef


@dataclass
class PersonHistory:
    """Where each person track was over the last `keep_s` seconds of capture time."""

    params: OwnerParams
    keep_s: float
    _people: dict[int, deque[_Seen]] = field(default_factory=dict)

    def record(self, people: Sequence[Observation], ts: float) -> None:
        for q in people:
            ref = ObjectRef(q.track_id, q.class_name, q.confidence, "owner", q.box)
            self._people.setdefault(q.track_id, deque()).append(_Seen(ts, q.anchor, q.ground, q.height_px, ref))
        for tid in list(self._people):
            samples = self._people[tid]
            while samples and samples[0].ts < ts - self.keep_s:
                samples.popleft()
            if not samples:
                del self._people[tid]

    def owner_of(self, o: Observation, drop_ts: float, first_ts: float, ts: float) -> ObjectRef | None:
        """The person within the owner radius of `o` closest in time to `drop_ts`, looking from
        `first_ts - lookback_s` to `ts`, as seen then (role "owner": the evidence); None if nobody was that close."""
        start = min(drop_ts, first_ts - self.params.lookback_s)
        best: tuple[float, float, int, ObjectRef] | None = None  # (time from the drop, distance in radii, track)
        for tid, samples in self._people.items():
            for s in samples:
                if not start <= s.ts <= ts:
                    continue
                d = self._radii(o, s, owner=True)
                if d <= 1.0 and (best is None or (abs(s.ts - drop_ts), d, tid) < best[:3]):
                    best = (abs(s.ts - drop_ts), d, tid, s.ref)
        return best[3] if best else None

    def last_near(self, person: int, o: Observation, until_ts: float) -> float | None:
        """The last time (up to `until_ts`) `person` was within the leave distance of `o`, if remembered."""
        near = [s.ts for s in self._people.get(person, ()) if s.ts <= until_ts and self._radii(o, s, owner=False) <= 1]
        return max(near, default=None)

    def _radii(self, o: Observation, s: _Seen, *, owner: bool) -> float:
        """Distance from `o` to the sample, as a multiple of the owner radius (or of the leave distance)."""
        p = self.params
        if o.ground is not None and s.ground is not None:
            return math.dist(o.ground, s.ground) / (p.owner_radius_m if owner else p.leave_distance_m)
        return math.dist(o.anchor, s.anchor) / ((p.owner_radius_rel if owner else p.leave_distance_rel) * s.height_px)

    def __len__(self) -> int:
        return sum(len(v) for v in self._people.values())
