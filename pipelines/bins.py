"""Garbage at a bin: the frame-level gates of overflowing_bin and exposed_garbage.

An overflowing bin (垃圾满溢, 06042) and exposed garbage (暴露垃圾, 06010, loose garbage with no container) are
different cases, so one pile must not become both. Both gates judge "at a bin" the same way: a garbage box lies
at a bin when at least `min_overlap` of the smaller of the two boxes lies inside the bin's box widened by
`margin` of its size on each side (garbage heaped on top of a bin reaches above its box; bags dumped around it
lie just beside it).

- `OverflowGatedRule` (overflowing_bin): a bin counts, as the incident's subject, only on frames with garbage or an
  `overflow` detection at it; an `overflow` detection with no detected bin under it counts by itself. The bin is
  the subject whenever there is one, because the bin stays put while the garbage boxes on it come and go. A bin
  without garbage for longer than `end_after_s` was emptied: the dwell rule forgets it, so its next overflow
  serves the whole dwell again (the bin itself stood still all along).
- `BinGarbageExcludedRule` (exposed_garbage): garbage (and scene-change regions) at a bin is the bin's case, not
  exposed garbage.

Pure: boxes in, boxes out; the knobs come from the incident configs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gridwatch.pipelines.dwell import StationaryDwellRule
from gridwatch.pipelines.types import Box, IncidentUpdate, Observation
from gridwatch.pipelines.wire_shape import GatedRule


@dataclass(frozen=True)
class BinGeometry:
    """When a box lies at a bin (see the module docstring)."""

    bin_classes: frozenset[str]
    min_overlap: float
    margin: float


def widened(box: Box, margin: float) -> Box:
    x1, y1, x2, y2 = box
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    return (x1 - dx, y1 - dy, x2 + dx, y2 + dy)


def overlap_share(a: Box, b: Box) -> float:
    """Intersection of `a` and `b` over the smaller box's area (1 = one lies inside the other)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0


def at_bin(o: Observation, bin_: Observation, geometry: BinGeometry) -> bool:
    return overlap_share(o.box, widened(bin_.box, geometry.margin)) >= geometry.min_overlap


@dataclass
class OverflowGatedRule(GatedRule):
    """overflowing_bin's view of a frame: bins only while garbage or an overflow lies at them (see the module
    docstring); garbage boxes themselves are evidence, never subjects."""

    inner: StationaryDwellRule
    geometry: BinGeometry
    garbage_classes: frozenset[str]
    overflow_classes: frozenset[str]
    min_confidence: float
    end_after_s: float
    _full_at: dict[int, float] = field(default_factory=dict)  # bin track -> last time garbage was at it

    def update(self, observations: Sequence[Observation], ts: float) -> list[IncidentUpdate]:
        selected = self.select(observations)
        for o in selected:
            if o.class_name in self.geometry.bin_classes:
                self._full_at[o.track_id] = ts
        emptied = {tid for tid, last in self._full_at.items() if ts - last > self.end_after_s}
        if emptied:
            self.inner.forget_tracks(emptied)
            for tid in emptied:
                del self._full_at[tid]
        return self.inner.update(selected, ts)

    def select(self, observations: Sequence[Observation]) -> list[Observation]:
        g = self.geometry
        bins = [o for o in observations if o.class_name in g.bin_classes]
        evidence = [o for o in observations if o.confidence >= self.min_confidence
                    and o.class_name in self.garbage_classes | self.overflow_classes]
        full = [b for b in bins if any(at_bin(e, b, g) for e in evidence)]
        out: list[Observation] = []
        for o in observations:
            if o.class_name in g.bin_classes:
                if o in full:
                    out.append(o)
            elif o.class_name in self.overflow_classes:
                if not any(at_bin(o, b, g) for b in full):  # the bin under it is the subject
                    out.append(o)
            elif o.class_name not in self.garbage_classes:
                out.append(o)
        return out


@dataclass
class BinGarbageExcludedRule(GatedRule):
    """exposed_garbage's view: its garbage classes (scene-change regions included) minus what lies at a bin."""

    geometry: BinGeometry
    garbage_classes: frozenset[str]

    def select(self, observations: Sequence[Observation]) -> list[Observation]:
        bins = [o for o in observations if o.class_name in self.geometry.bin_classes]
        if not bins:
            return list(observations)
        return [o for o in observations if o.class_name not in self.garbage_classes
                or not any(at_bin(o, b, self.geometry) for b in bins)]
