"""fallen_wire's shape gate: which observations may be a wire at all, in front of the shared dwell rule.

Two kinds of evidence reach the rule:

- a detected wire (a detector class such as the demo model's `wire`). A wire that hangs between its poles is
  high in the view: on a calibrated camera its footprint has no ground point (this gate drops it), and with
  zones it is outside the road/sidewalk zones (the dwell rule's zone check).
- a scene-change region (`unknown_object`). A wire that stays up is part of the long-term background from the
  camera's setup, so it never becomes a region; a region is a *new* static thing. Only a long thin one is a wire
  candidate: elongation (long / short side of its minimum-area rectangle, or of the band it forms when bent) at
  least `min_elongation`, and thin: its short side, estimated from the region's area on the ground on a calibrated
  camera (area = long x short, long = elongation x short) or from its box in pixels otherwise, at most
  `max_thickness_m` / `max_thickness_px`.
  A round blob (a bag, a pile) is not a wire; a region without a measured elongation is not either.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gridwatch.pipelines.base import Rule
from gridwatch.pipelines.lifecycle import REATTACH_INSIDE, inside_fraction
from gridwatch.pipelines.types import REGION_CLASS, Box, EndReason, IncidentUpdate, Observation, OpenIncident


@dataclass(frozen=True)
class WireShape:
    """The region-shape knobs (defaults live in `gridwatch.pipelines.incidents.fallen_wire`)."""

    min_elongation: float
    max_thickness_m: float
    max_thickness_px: float


def thickness_m(o: Observation) -> float | None:
    """The short side of a region in metres from its ground area and elongation (None when not measured)."""
    if o.area_m2 is None or o.elongation is None or o.elongation <= 0:
        return None
    return math.sqrt(o.area_m2 / o.elongation)


def thickness_px(o: Observation) -> float | None:
    """The short side of a region in pixels: its box's diagonal is about its long side when it is thin."""
    if o.elongation is None or o.elongation <= 0:
        return None
    x1, y1, x2, y2 = o.box
    return math.hypot(x2 - x1, y2 - y1) / o.elongation


def is_wire_shaped(o: Observation, shape: WireShape) -> bool:
    """Whether a region is long and thin enough to be a wire (see the module docstring)."""
    if o.elongation is None or o.elongation < shape.min_elongation:
        return False
    metres = thickness_m(o)
    if metres is not None:
        return metres <= shape.max_thickness_m
    pixels = thickness_px(o)
    return pixels is not None and pixels <= shape.max_thickness_px


@dataclass
class GatedRule:
    """A rule seen through a filter: `inner` gets only the observations `select` keeps (by default those `keep`
    accepts one by one; a gate that must see the whole frame, such as `pipelines.bins`, overrides `select`); the
    rest is delegated."""

    inner: Rule
    incident_type: str = field(init=False)

    def __post_init__(self) -> None:
        self.incident_type = self.inner.incident_type

    def update(self, observations: Sequence[Observation], ts: float) -> list[IncidentUpdate]:
        return self.inner.update(self.select(observations), ts)

    def select(self, observations: Sequence[Observation]) -> list[Observation]:
        return [o for o in observations if self.keep(o)]

    def keep(self, o: Observation) -> bool:
        raise NotImplementedError

    def flush(self, ts: float, reason: EndReason) -> list[IncidentUpdate]:
        return self.inner.flush(ts, reason)

    def export(self) -> list[OpenIncident]:
        return self.inner.export()

    def restore(self, records: Iterable[OpenIncident], ts: float) -> None:
        self.inner.restore(records, ts)

    def state_size(self) -> int:
        size = getattr(self.inner, "state_size", None)
        return int(size()) if callable(size) else 0


@dataclass
class ShapeGatedRule(GatedRule):
    """A rule that sees only the regions shaped like a wire (and every other observation unchanged)."""

    shape: WireShape  # from the fallen_wire config: its defaults live there only
    calibrated: bool = False

    def update(self, observations: Sequence[Observation], ts: float) -> list[IncidentUpdate]:
        self.calibrated = self.calibrated or any(o.ground is not None for o in observations)
        return super().update(observations, ts)

    def keep(self, o: Observation) -> bool:
        """Off the ground on a calibrated camera (any object on it has a ground point): a wire still up between
        its poles. The plausibility filter's own check sees only the rule's classes, so on a view with only a
        hanging wire it would never learn that the camera is calibrated."""
        if self.calibrated and o.ground is None:
            return False
        return o.class_name != REGION_CLASS or is_wire_shaped(o, self.shape)


WIRE_MEMORY_S = 60.0
"""How long the place of a cable-shaped region is remembered: a piece found there later is part of that cable."""


@dataclass
class WiresExcludedRule(GatedRule):
    """exposed_garbage's view: every observation except regions at least `max_elongation` long for their width,
    and the pieces of such a region.

    A fallen cable is fallen_wire's case; without this it would also become exposed garbage once that rule's
    (long) dwell passed. Piles, bags and bins are compact, far below the default (the fallen_wire gate's 6).
    When the view cannot be registered for a while (a lighting jump, a pause), a cable's region vanishes and may
    come back in pieces, and a short end piece is compact: a region lying inside the box of a cable-shaped region
    seen in the last `WIRE_MEMORY_S`, and out of sight now, is that cable, not garbage (a bag set down in a
    visible cable's box is a bag)."""

    max_elongation: float  # from the exposed_garbage config
    _wires: dict[int, tuple[Box, float]] = field(default_factory=dict)  # track id -> (box, last seen)

    def update(self, observations: Sequence[Observation], ts: float) -> list[IncidentUpdate]:
        for o in observations:
            if self._is_wire(o):
                self._wires[o.track_id] = (o.box, ts)
        self._wires = {t: seen for t, seen in self._wires.items() if ts - seen[1] <= WIRE_MEMORY_S}
        return super().update(observations, ts)

    def select(self, observations: Sequence[Observation]) -> list[Observation]:
        visible = {o.track_id for o in observations}
        lost = [box for t, (box, _) in self._wires.items() if t not in visible]
        return [o for o in observations if o.class_name != REGION_CLASS
                or not (self._is_wire(o) or any(inside_fraction(o.box, box) >= REATTACH_INSIDE for box in lost))]

    def _is_wire(self, o: Observation) -> bool:
        return o.class_name == REGION_CLASS and o.elongation is not None and o.elongation >= self.max_elongation
