"""littering: an object is left behind. It appears next to a person, the person walks away, the object stays.

The objects are detector classes for litter and, by default, the scene-change stage's regions (`unknown_object`:
a new static thing no detector class covers, emitted `region_age_s` after it came to rest).

Per object track the rule remembers its owner: the person who was within `owner_radius` of its place around the
drop (`pipelines.owners`: a region appears seconds after the drop, so the rule keeps a short history of where
people were and looks back up to `owner_lookback_s`). The object is *attended* while its owner is within
`leave_distance`, or while any person stands right next to it (within `owner_radius`). The rule fires when the
object has been still and unattended for `dwell_s`, counted from when the owner was last near it (remembered,
so a 1 s dwell works for a region that appears after its owner walked off); started_ts is the drop (for a
region: its first appearance minus its age). With `require_owner`, an object nobody was seen with is not
littering (it may be exposed garbage: a different rule); without it, any unattended still object counts.

Distances are metres on a calibrated camera; otherwise multiples of the person's box height (`*_rel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gridwatch.pipelines.base import BookedRule, ZoneGate, distance, forget_gone
from gridwatch.pipelines.lifecycle import Hit, IncidentBook, TokenFactory
from gridwatch.pipelines.motion import StillnessParams, StillnessTracker
from gridwatch.pipelines.owners import OwnerParams, PersonHistory
from gridwatch.pipelines.plausibility import PlausibilityFilter, PlausibilityParams
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
    owner_lookback_s: float = 10.0
    plausibility: PlausibilityParams = field(default_factory=PlausibilityParams)
    owner_radius_rel: float = 1.0
    leave_distance_rel: float = 2.0
    owner_window_s: float = 3.0
    inertia: int = 3
    forget_after_s: float = 30.0


    def owners(self) -> OwnerParams:
        return OwnerParams(self.owner_radius_m, self.leave_distance_m, self.owner_lookback_s,
                           self.owner_radius_rel, self.leave_distance_rel)


@dataclass
class _ObjectState:
    first_ts: float
    drop_ts: float
    owner: int | None = None
    owner_ref: ObjectRef | None = None
    unattended_since: float | None = None
    attended_ts: float | None = None


@dataclass
class LitteringRule(BookedRule):
    params: LitteringParams
    id_prefix: str
    incident_type: str = "littering"
    new_token: TokenFactory | None = None
    _still: StillnessTracker = field(init=False)
    _gate: ZoneGate = field(init=False)
    _book: IncidentBook = field(init=False)
    _history: PersonHistory = field(init=False)
    _plausible: PlausibilityFilter = field(init=False)
    _objects: dict[int, _ObjectState] = field(default_factory=dict)
    _visible: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        p = self.params
        self._still = StillnessTracker(p.stillness)
        self._gate = ZoneGate(p.zones, p.inertia)
        self._history = PersonHistory(p.owners(), keep_s=p.owner_lookback_s + p.owner_window_s)
        self._plausible = PlausibilityFilter(p.plausibility)
        self._book = IncidentBook(self.incident_type, self.id_prefix, p.update_every_s, p.end_after_s,
                                  resume_grace_s=p.end_after_s + p.stillness.window_s, new_token=self.new_token)

    def update(self, observations: Sequence[Observation], ts: float) -> list[IncidentUpdate]:
        p = self.params
        people = [o for o in observations if o.class_name in p.owner_classes and o.confidence >= p.min_confidence]
        self._history.record(people, ts)
        things = [o for o in observations if o.class_name in p.object_classes]
        for o in things:
            self._plausible.observe(o, ts)
        things = [o for o in things if o.confidence >= p.min_confidence]
        self._visible = {o.track_id for o in things}
        hits = [h for o in things if (h := self._hit(o, people, ts)) is not None]
        updates = self._book.step(hits, ts)
        self._forget(ts)
        return updates

    def _hit(self, o: Observation, people: list[Observation], ts: float) -> Hit | None:
        p = self.params
        state = self._objects.get(o.track_id)
        if state is None:
            state = self._objects[o.track_id] = _ObjectState(ts, ts - (o.age_s or 0.0))
        since = self._rest_since(o, state, self._still.update(o, ts), ts)
        zone = self._gate.update(o, ts)
        owner = self._assign_owner(o, state, people, ts)
        attended = self._attended(o, owner, people)
        if attended:
            state.unattended_since, state.attended_ts = None, ts
        elif state.unattended_since is None:
            state.unattended_since = self._left_at(o, state, ts)
        if zone is None or state.unattended_since is None or self._plausible.doubt(o) is not None:
            return None
        start = self._fired_since(since, state, ts)
        if start is None:  # an open incident continues; a restored one has served its dwell before the restart
            start = self._book.continuing_at(o.track_id, o.box, self._visible)
            if start is None and since is not None:
                start = self._book.resuming_at(o.box, o.ground)
            if start is None:
                return None
        objs = [ObjectRef(o.track_id, o.class_name, o.confidence, "subject", o.box, o.area_m2)]
        if owner is not None:
            objs.append(ObjectRef(owner.track_id, owner.class_name, owner.confidence, "owner", owner.box))
        elif state.owner_ref is not None:  # gone from view: as seen at the drop
            objs.append(state.owner_ref)
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

    def _rest_since(self, o: Observation, state: _ObjectState, still_since: float | None, ts: float) -> float | None:
        """When the object came to rest. A region is emitted only once static: it rests since its drop, unless the
        stillness tracker, once it has seen enough of it, says it moves."""
        if o.age_s is None:
            return still_since
        young = ts - state.first_ts < self.params.stillness.min_coverage * self.params.stillness.window_s
        if still_since is None and not young:
            return None
        return min(still_since if still_since is not None else ts, state.drop_ts)

    def _left_at(self, o: Observation, state: _ObjectState, ts: float) -> float:
        """When the object became unattended: now, or when its owner was last remembered near it (not before
        the drop, nor before anyone was last seen attending it)."""
        if state.owner is None:
            return ts
        last = self._history.last_near(state.owner, o, ts)
        left = ts if last is None else min(ts, max(last, state.drop_ts))
        return left if state.attended_ts is None else max(left, state.attended_ts)

    def _assign_owner(
        self, o: Observation, state: _ObjectState, people: list[Observation], ts: float
    ) -> Observation | None:
        if state.owner is None and ts - state.first_ts <= self.params.owner_window_s:
            state.owner_ref = self._history.owner_of(o, state.drop_ts, state.first_ts, ts)
            state.owner = state.owner_ref.track_id if state.owner_ref else None
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
        self._plausible.prune(ts, self.params.forget_after_s)

    def state_size(self) -> int:
        return len(self._still) + len(self._gate) + len(self._objects) + len(self._plausible) + len(self._history)
