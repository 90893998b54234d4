"""street_vendor on scene-change regions: people who stay in a zone with goods spread on the ground around them.

A detected stall or cart (a detector class) is the shared dwell rule, unchanged (`pipelines.dwell`). No detector
knows a blanket of goods, so the rule also reads the scene-change stage's regions (`unknown_object`): a *vendor*
is a person who stands or sits still in a zone, with *goods* around them: regions within `radius` of the person
(metres on a calibrated camera, else multiples of the person's box height) that appeared while the person was
there (not before they were first seen, give or take `appear_grace_s`); each region belongs to the nearest such
person only. The goods must be spread out, not a bag held beside a seat: their total area at least
`min_area_m2` (uncalibrated: box area relative to the person's height squared, `min_area_rel`), or at least
`min_regions` separate regions. Goods lie on the ground: a region cut by the top of the frame, or without a
ground point on a calibrated camera, is not goods (`plausibility`). So a crowd at a bus stop (no goods, or one
bag each) and a person on a bench with a bag (one small region) are not vendors; goods with nobody beside them
are not either (exposed_garbage may take them).

The rule fires when a vendor has stayed beside the goods for `dwell_s`: from the later of when the person came
to rest and when the first goods appeared. One incident per vendor (keyed by the person's track); other persons
staying beside the goods are listed as vendors too. The event's objects are the evidence: the goods regions
(role `goods`, with their area in m²) and the vendors (role `vendor`); the confidence is the mean of the best
vendor score and the goods' mean score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gridwatch.pipelines.base import ZoneGate, distance, forget_gone
from gridwatch.pipelines.dwell import StationaryDwellRule
from gridwatch.pipelines.lifecycle import Hit
from gridwatch.pipelines.motion import StillnessTracker
from gridwatch.pipelines.types import Box, IncidentUpdate, ObjectRef, Observation, anchor_of


@dataclass(frozen=True)
class GoodsParams:
    """The region path's knobs (defaults live in `gridwatch.pipelines.incidents.street_vendor`)."""

    vendor_classes: frozenset[str]
    goods_classes: frozenset[str]
    radius_m: float
    radius_rel: float
    min_area_m2: float
    min_area_rel: float
    min_regions: int
    appear_grace_s: float


@dataclass
class _Vendor:
    person: Observation
    since: float
    arrived: float
    zone: str
    goods: list[Observation]


@dataclass
class VendorRule(StationaryDwellRule):
    """Detected stalls/carts as the dwell rule, plus vendors with goods regions (module docstring)."""

    goods: GoodsParams = field(kw_only=True)
    _people_still: StillnessTracker = field(init=False)
    _people_gate: ZoneGate = field(init=False)
    _arrived: dict[int, float] = field(default_factory=dict)
    _dropped: dict[int, tuple[float, float]] = field(default_factory=dict)  # region -> (drop ts, last seen)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._people_still = StillnessTracker(self.params.stillness)
        self._people_gate = ZoneGate(self.params.zones, self.params.inertia)

    def update(self, observations: Sequence[Observation], ts: float) -> list[IncidentUpdate]:
        self._visible = {o.track_id for o in observations}
        hits = [h for o in observations if (h := self._hit(o, ts)) is not None]
        hits.extend(self._vendor_hits(observations, ts))
        updates = self._book.step(hits, ts)
        self._forget(ts)
        self._forget_people(ts)
        return updates

    def _vendor_hits(self, observations: Sequence[Observation], ts: float) -> list[Hit]:
        g, p = self.goods, self.params
        regions = [o for o in observations if o.class_name in g.goods_classes]
        for o in regions:
            self._plausible.observe(o, ts)
        regions = [o for o in regions if o.confidence >= p.min_confidence and self._on_ground(o)]
        for o in regions:
            drop = self._dropped.get(o.track_id, (ts - (o.age_s or 0.0), ts))[0]
            self._dropped[o.track_id] = (drop, ts)
        stayers = [v for o in observations if o.class_name in g.vendor_classes and o.confidence >= p.min_confidence
                   if (v := self._stayer(o, ts)) is not None]
        for r in regions:
            owner = self._nearest(r, stayers)
            if owner is not None:
                owner.goods.append(r)
        hits = []
        for v in stayers:
            if v.goods and self._enough(v.goods, v.person):
                others = [w for w in stayers if w is not v and any(self._near(r, w) for r in v.goods)]
                if (h := self._hit_of(v, others, ts)) is not None:
                    hits.append(h)
        return hits

    def _stayer(self, o: Observation, ts: float) -> _Vendor | None:
        """`o` if it stays: still, in a zone (its goods are attributed next)."""
        arrived = self._arrived.setdefault(o.track_id, ts)
        since = self._people_still.update(o, ts)
        zone = self._people_gate.update(o, ts)
        if since is None or zone is None:
            return None
        return _Vendor(o, max(since, zone[1]), arrived, zone[0], [])

    def _nearest(self, region: Observation, stayers: list[_Vendor]) -> _Vendor | None:
        """The goods' vendor: the nearest person staying within the radius, who was there when they appeared.
        Each region has at most one: five people at a bus stop, each with a bag, have one small bag each."""
        grace = self.goods.appear_grace_s
        drop = self._dropped[region.track_id][0]
        near = [v for v in stayers if self._near(region, v) and drop >= v.arrived - grace]
        return min(near, key=lambda v: distance(region, v.person), default=None)

    def _near(self, region: Observation, v: _Vendor) -> bool:
        if v.person.ground is not None and region.ground is None:  # calibrated: goods lie on the ground plane
            return False
        return distance(region, v.person) <= self._radius(region, v.person)

    def _on_ground(self, region: Observation) -> bool:
        """Goods lie on the ground: a region the plausibility filter doubts (cut by the top of the frame: the
        lower part of something that continues above the view, such as a pole or a hanging cable that moved;
        mostly off the ground plane on a calibrated camera; a low score) is not goods."""
        return self._plausible.doubt(region) is None

    def _radius(self, region: Observation, person: Observation) -> float:
        if region.ground is not None and person.ground is not None:
            return self.goods.radius_m
        return self.goods.radius_rel * person.height_px

    def _enough(self, goods: list[Observation], person: Observation) -> bool:
        """Goods spread on the ground, not a bag beside a seat: enough regions, or enough area in total."""
        g = self.goods
        if len(goods) >= g.min_regions:
            return True
        if all(r.area_m2 is not None for r in goods) and person.ground is not None:
            return sum(r.area_m2 or 0.0 for r in goods) >= g.min_area_m2
        px = sum((r.box[2] - r.box[0]) * (r.box[3] - r.box[1]) for r in goods)
        return px / person.height_px ** 2 >= g.min_area_rel

    def _hit_of(self, vendor: _Vendor, others: list[_Vendor], ts: float) -> Hit | None:
        """The incident of `vendor` and its goods (persons staying beside the goods are vendors too)."""
        person, goods = vendor.person, vendor.goods
        box = _union([person.box, *(r.box for r in goods)])
        start = max(vendor.since, min(self._dropped[r.track_id][0] for r in goods))
        if ts - start < self.params.dwell_s:
            resumed = self._book.continuing_at(person.track_id, person.box, self._visible)
            if resumed is None:  # restored after a restart: the dwell was served already
                resumed = self._book.resuming_at(box, person.ground)
            if resumed is None:
                return None
            start = resumed
        people = [person, *(w.person for w in others)]
        box = _union([box, *(o.box for o in people)])
        conf = 0.5 * max(o.confidence for o in people) + 0.5 * sum(r.confidence for r in goods) / len(goods)
        objs = [ObjectRef(r.track_id, r.class_name, r.confidence, "goods", r.box, r.area_m2) for r in goods]
        objs += [ObjectRef(o.track_id, o.class_name, o.confidence, "vendor", o.box) for o in people]
        return Hit(person.track_id, start, round(conf, 3), box, anchor_of(box), person.ground,
                   vendor.zone, tuple(objs))  # "frame" without zones, as for a detected stall

    def _forget_people(self, ts: float) -> None:
        forget_gone(ts, self.params.forget_after_s, self._people_still, self._people_gate, self._arrived)
        for tid in [t for t, (_, last) in self._dropped.items() if ts - last > self.params.forget_after_s]:
            del self._dropped[tid]

    def state_size(self) -> int:
        people = len(self._people_still) + len(self._people_gate) + len(self._arrived)
        return super().state_size() + people + len(self._dropped)


def _union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))

