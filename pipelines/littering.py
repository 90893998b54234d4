"""littering: an object is left behind. It appears next to a person, the person walks away, the object stays.

Per object track the rule remembers its owner: the nearest person within `owner_radius` during the object's
first `owner_window_s`. The object is *attended* while its owner is within `leave_distance`, or while any person
stands right next to it (within `owner_radius`). The rule fires when the object has been still and unattended for
`dwell_s`; started_ts is when it came to rest (the drop). With `require_owner`, an object nobody was seen with is
not littering (it may be exposed garbage: a different rule); without it, any unattended still object counts.

Distances are metres on a calibrated camera; otherwise multiples of the person's box height (`*_rel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gridwatch.pipelines.base import BookedRule, ZoneGate, distance, forget_gone
from gridwatch.pipelines.lifecycle import Hit, IncidentBook, TokenFactory
from gridwatch.pipelines.motion import StillnessParams, StillnessTracker
from gridwatch.pipelines.types import IncidentUpdate, ObjectRef, Observation
from gridwatch.pipelines.zones import Zone


@dataclass(frozen=True)
class LitteringParams:
    """The rule's knobs. The user-facing ones have no default here: they come from the littering config model
    (`gridwatch.pipelines.incidents.littering`), the one place defaults live. The rest are internal."""

    zones: tuple[Zone, ...]
    object_classes: frozenset[str]
    owner_classes: frozenset[str]
    dwell_s: float
    min_confidence: float
    owner_radius_m: float
    leave_distance_m: float
    require_owner: bool
    stillness: StillnessParams
    update_every_s: float
    end_after_s: float
    owner_radius_rel: float = 1.0
    leave_distance_rel: float = 2.0
    owner_window_s: float = 3.0
    inertia: int = 3
    forget_after_s: float = 30.0


@dataclass
class _ObjectState:
    first_ts: float
    owner: int | None = None
    unattended_since: float | None = None


@dataclass
class LitteringRule(BookedRule):
    params: LitteringParams
    id_prefix: str
    incident_type: str = "littering"
    new_token: TokenFactory | None = None
    _still: StillnessTracker = field(init=False)
    _gate: ZoneGate = field(init=False)
    _book: IncidentBook = field(init=False)
    _objects: dict[int, _ObjectState] = field(default_factory=dict)
    _visible: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        p = self.params
        self._still = StillnessTracker(p.stillness)
        self._gate = ZoneGate(p.zones, p.inertia)
        self._book = IncidentBook(self.incident_type, self.id_prefix, p.update_every_s, p.end_after_s,
                                  resume_grace_s=p.end_after_s + p.stillness.window_s, new_token=self.new_token)

    def update(self, observations: Sequence[Observation], ts: float) -> list[IncidentUpdate]:
        p = self.params
        people = [o for o in observations if o.class_name in p.owner_classes and o.confidence >= p.min_confidence]
        things = [o for o in observations if o.class_name in p.object_classes and o.confidence >= p.min_confidence]
        self._visible = {o.track_id for o in things}
        hits = [h for o in things if (h := self._hit(o, people, ts)) is not None]
        updates = self._book.step(hits, ts)
        self._forget(ts)
        return updates

    def _hit(self, o: Observation, people: list[Observation], ts: float) -> Hit | None:
        p = self.params
        since = self._still.update(o, ts)
        zone = self._gate.update(o, ts)
        state = self._objects.setdefault(o.track_id, _ObjectState(ts))
        owner = self._assign_owner(o, state, people, ts)
        attended = self._attended(o, owner, people)
        if attended:
            state.unattended_since = None
        elif state.unattended_since is None:
            state.unattended_since = ts
        if zone is None or state.unattended_since is None:
            return None
        start = self._fired_since(since, state, ts)
        if start is None:  # an open incident continues; a restored one has served its dwell before the restart
            start = self._book.continuing_at(o.track_id, o.box, self._visible)
            if start is None and since is not None:
                start = self._book.resuming_at(o.box, o.ground)
            if start is None:
                return None
        objs = [ObjectRef(o.track_id, o.class_name, o.confidence, "subject", o.box)]
        if owner is not None:
            objs.append(ObjectRef(owner.track_id, owner.class_name, owner.confidence, "owner", owner.box))
        zone_name = zone[0] if p.zones else None
        return Hit(o.track_id, start, o.confidence, o.box, o.anchor, o.ground, zone_name, tuple(objs))

    def _fired_since(self, still_since: float | None, state: _ObjectState, ts: float) -> float | None:
        """When the object came to rest, if it has been still and unattended (and owned, if needed) for the dwell."""
        p = self.params
        if still_since is None or state.unattended_since is None:
            return None
        if p.require_owner and state.owner is None:
            return None
        if ts - max(still_since, state.unattended_since) < p.dwell_s:
            return None
        return still_since

    def _assign_owner(
        self, o: Observation, state: _ObjectState, people: list[Observation], ts: float
    ) -> Observation | None:
        if state.owner is None and ts - state.first_ts <= self.params.owner_window_s:
            near = [(self._dist(o, q), q) for q in people]
            near = [(d, q) for d, q in near if d <= self._radius(o, q, owner=True)]
            if near:
                state.owner = min(near, key=lambda dq: dq[0])[1].track_id
        return next((q for q in people if q.track_id == state.owner), None)

    def _attended(self, o: Observation, owner: Observation | None, people: list[Observation]) -> bool:
        if owner is not None and self._dist(o, owner) <= self._radius(o, owner, owner=False):
            return True
        return any(self._dist(o, q) <= self._radius(o, q, owner=True) for q in people)

    def _dist(self, o: Observation, person: Observation) -> float:
        return distance(o, person)

    def _radius(self, o: Observation, person: Observation, *, owner: bool) -> float:
        p = self.params
        if o.ground is not None and person.ground is not None:
            return p.owner_radius_m if owner else p.leave_distance_m
        return (p.owner_radius_rel if owner else p.leave_distance_rel) * person.height_px

    def _forget(self, ts: float) -> None:
        forget_gone(ts, self.params.forget_after_s, self._still, self._gate, self._objects)

    def state_size(self) -> int:
        return len(self._still) + len(self._gate) + len(self._objects)
