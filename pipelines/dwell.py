"""The shared "something of these classes stays still in this zone for longer than the dwell" rule.

illegal_parking (vehicles at the kerb), street_vendor (a stall or cart on the sidewalk), exposed_garbage (a
pile nobody claims) and fallen_wire (a cable lying on the road) are all this rule with their own classes, zones
and dwell; each is a module in `pipelines/incidents/` whose config model holds its defaults.

started_ts is when the object came to rest inside the zone; the rule fires `dwell_s` later. Once an incident is
open, small wobbles of the box do not end it: the object only counts as gone when it has moved more than twice
the stillness tolerance from where it came to rest, left the zone, or has not been seen for `end_after_s`.

Street furniture the detector takes for one of the classes (a gantry sign called a bus) stands still for ever,
too: a track only counts while `pipelines.plausibility` finds it plausible (score history, where its box is,
its size in metres on a calibrated camera).

Scene-change regions (`unknown_object`) rest since their drop: the stage emits them `region_age_s` after it, so
started_ts is back-dated by the age. With `owners` set (exposed_garbage), a region that appeared where a person
was (`pipelines.owners`, looking back) is someone's: littering's business, not this rule's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from gridwatch.pipelines.base import BookedRule, ZoneGate, forget_gone, position
from gridwatch.pipelines.lifecycle import Hit, IncidentBook, TokenFactory
from gridwatch.pipelines.motion import StillnessParams, StillnessTracker
from gridwatch.pipelines.owners import OwnerParams, PersonHistory
from gridwatch.pipelines.plausibility import PlausibilityFilter, PlausibilityParams
from gridwatch.pipelines.rule_config import DwellRuleConfig
from gridwatch.pipelines.types import ANCHOR_LIFT, REGION_CLASS, IncidentUpdate, ObjectRef, Observation, Point
from gridwatch.pipelines.zones import Zone


@dataclass(frozen=True)
class DwellParams:
    """The rule's knobs. The user-facing ones have no default here: they come from the incident type's config
    model (`from_config`), the one place defaults live. `inertia` and `forget_after_s` are internal."""

    zones: tuple[Zone, ...]
    classes: frozenset[str]
    dwell_s: float
    min_confidence: float
    stillness: StillnessParams
    update_every_s: float
    end_after_s: float
    plausibility: PlausibilityParams = field(default_factory=PlausibilityParams)
    owners: OwnerParams | None = None
    owner_classes: frozenset[str] = frozenset({"person"})
    inertia: int = 3
    forget_after_s: float = 30.0
    owner_window_s: float = 3.0
    footprint_lift: float = ANCHOR_LIFT

    @classmethod
    def from_config(cls, cfg: DwellRuleConfig, zones: tuple[Zone, ...]) -> DwellParams:
        """Params from a type's config; `zones` are the ones the config names (the registry picks them)."""
        return cls(
            zones=zones, classes=frozenset(cfg.classes), dwell_s=cfg.dwell_s, min_confidence=cfg.min_confidence,
            stillness=StillnessParams.from_config(cfg.stillness), update_every_s=cfg.update_every_s,
            end_after_s=cfg.end_after_s, plausibility=PlausibilityParams.from_config(cfg.plausibility),
            footprint_lift=cfg.footprint_lift,
        )


@dataclass
class StationaryDwellRule(BookedRule):
    params: DwellParams
    id_prefix: str
    incident_type: str
    new_token: TokenFactory | None = None
    _still: StillnessTracker = field(init=False)
    _gate: ZoneGate = field(init=False)
    _book: IncidentBook = field(init=False)
    _plausible: PlausibilityFilter = field(init=False)
    _history: PersonHistory | None = field(init=False)
    _parked_at: dict[int, tuple[Point, float]] = field(default_factory=dict)
    _owned: dict[int, tuple[float, bool]] = field(default_factory=dict)
    _visible: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        p = self.params
        self._still = StillnessTracker(p.stillness)
        self._gate = ZoneGate(p.zones, p.inertia, p.footprint_lift)
        self._plausible = PlausibilityFilter(p.plausibility)
        self._history = None
        if p.owners is not None:
            self._history = PersonHistory(p.owners, keep_s=p.owners.lookback_s + p.owner_window_s)
        self._book = IncidentBook(self.incident_type, self.id_prefix, p.update_every_s, p.end_after_s,
                                  resume_grace_s=p.end_after_s + p.stillness.window_s, new_token=self.new_token)

    def update(self, observations: Sequence[Observation], ts: float) -> list[IncidentUpdate]:
        self._visible = {o.track_id for o in observations}
        if self._history is not None:
            people = [o for o in observations if o.class_name in self.params.owner_classes
                      and o.confidence >= self.params.min_confidence]
            self._history.record(people, ts)
        hits = [h for o in observations if (h := self._hit(o, ts)) is not None]
        updates = self._book.step(hits, ts)
        self._forget(ts)
        return updates

    def _hit(self, o: Observation, ts: float) -> Hit | None:
        p = self.params
        if o.class_name not in p.classes:
            return None
        self._plausible.observe(o, ts)
        if o.confidence < p.min_confidence:
            return None
        since = self._still.update(o, ts)
        zone = self._gate.update(o, ts)
        if self._plausible.doubt(o) is not None or self._is_owned(o, ts):
            return None
        if zone is None:
            self._parked_at.pop(o.track_id, None)
            return None
        start = self._rest_start(o, since, zone[1], ts)
        if start is None or ts - start < p.dwell_s:
            start = self._book.continuing_at(o.track_id, o.box, self._visible)
            if start is None and since is not None:  # restored after a restart: the dwell was served already
                start = self._book.resuming_at(o.box, o.ground)
            if start is None:
                return None
        obj = ObjectRef(o.track_id, o.class_name, o.confidence, "subject", o.box, o.area_m2)
        return Hit(o.track_id, start, o.confidence, o.box, o.anchor, o.ground, zone[0], (obj,))

    def _rest_start(self, o: Observation, still_since: float | None, zone_since: float, ts: float) -> float | None:
        parked = self._parked_at.get(o.track_id)
        if parked is not None:
            still = self.params.stillness
            tol = 2 * (still.tolerance_m if o.ground else still.tolerance_rel * o.height_px)
            if math.dist(parked[0], position(o)) <= tol:
                return parked[1]
            del self._parked_at[o.track_id]
        if still_since is None:
            return None
        start = max(still_since, zone_since)
        if o.age_s is not None:  # a region is emitted once static: it rests since it appeared, age_s ago
            start = min(start, ts - o.age_s)
        self._parked_at[o.track_id] = (position(o), start)
        return start

    def _is_owned(self, o: Observation, ts: float) -> bool:
        """A region someone put down (looked up during its first `owner_window_s`); only with `owners` set."""
        if self._history is None or o.class_name != REGION_CLASS:
            return False
        first, owned = self._owned.setdefault(o.track_id, (ts, False))
        if not owned and ts - first <= self.params.owner_window_s:
            owned = self._history.owner_of(o, first - (o.age_s or 0.0), first, ts) is not None
            self._owned[o.track_id] = (first, owned)
        return owned

    def forget_tracks(self, track_ids: set[int]) -> None:
        """Drop what the rule holds about these tracks, so seen again they serve the whole dwell anew (a bin whose
        overflow was cleared: its next overflow is a new case). Open incidents are the book's, unchanged."""
        self._still.forget(track_ids)
        self._gate.forget(track_ids)
        for tid in track_ids:
            self._parked_at.pop(tid, None)
            self._owned.pop(tid, None)

    def _forget(self, ts: float) -> None:
        forget_gone(ts, self.params.forget_after_s, self._still, self._gate, self._parked_at, self._owned)
        self._plausible.prune(ts, self.params.forget_after_s)

    def state_size(self) -> int:
        """Number of per-track entries held (for the soak test and the health metric)."""
        people = len(self._history) if self._history is not None else 0
        tracks = len(self._still) + len(self._gate) + len(self._parked_at) + len(self._plausible) + len(self._owned)
        return tracks + people
