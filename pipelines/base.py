"""What every incident rule looks like, and the per-track bookkeeping they share.

A rule is a small object with one verb: `update(observations, ts) -> updates`. It never reads a clock (every
duration comes from capture timestamps), never does I/O and never draws. `flush(ts, reason)` ends its open
incidents, saying why the camera stops watching (the edge calls it on shutdown, when a file ends and when a
camera's stream is lost). `export()` / `restore(records, ts)` carry open incidents over a restart (see
`pipelines.lifecycle`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gridwatch.pipelines.lifecycle import IncidentBook
from gridwatch.pipelines.motion import StillnessTracker
from gridwatch.pipelines.types import (
    ANCHOR_LIFT,
    EndReason,
    IncidentUpdate,
    Observation,
    OpenIncident,
    Point,
    anchor_of,
)
from gridwatch.pipelines.zones import Zone, ZoneMembership


class Rule(Protocol):
    incident_type: str

    def update(self, observations: Sequence[Observation], ts: float) -> list[IncidentUpdate]: ...

    def flush(self, ts: float, reason: EndReason) -> list[IncidentUpdate]: ...

    def export(self) -> list[OpenIncident]: ...

    def restore(self, records: Iterable[OpenIncident], ts: float) -> None: ...


def distance(a: Observation, b: Observation, rel_scale: float | None = None) -> float:
    """Ground distance in metres when both have ground points, else pixels divided by `rel_scale` (if given)."""
    if a.ground is not None and b.ground is not None:
        return math.dist(a.ground, b.ground)
    d = math.dist(a.anchor, b.anchor)
    return d / rel_scale if rel_scale else d


def position(o: Observation) -> Point:
    return o.ground if o.ground is not None else o.anchor


@dataclass
class ZoneGate:
    """Which zone (if any) a track is in, debounced, and since when it has been there. The point tested is the box's
    bottom-centre raised by `lift` of its height (`anchor_of`; the observation's own anchor at the default)."""

    zones: tuple[Zone, ...]
    inertia: int = 3
    lift: float = ANCHOR_LIFT
    _membership: ZoneMembership = field(init=False)
    _entered: dict[int, tuple[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._membership = ZoneMembership(self.inertia)

    def update(self, obs: Observation, ts: float) -> tuple[str, float] | None:
        """(zone name, capture time it entered) or None when outside every zone. No zones = whole frame."""
        if not self.zones:
            return self._entered.setdefault(obs.track_id, ("frame", ts))
        point = obs.anchor if self.lift == ANCHOR_LIFT else anchor_of(obs.box, self.lift)
        for zone in self.zones:
            since = self._membership.update(obs.track_id, zone, point, ts)
            if since is not None:
                current = self._entered.get(obs.track_id)
                if current is None or current[0] != zone.name:
                    current = (zone.name, since)
                    self._entered[obs.track_id] = current
                return current
        self._entered.pop(obs.track_id, None)
        return None

    def forget(self, track_ids: set[int]) -> None:
        self._membership.forget(track_ids)
        for tid in track_ids:
            self._entered.pop(tid, None)

    def __len__(self) -> int:
        return len(self._entered)


def forget_gone(
    ts: float, forget_after_s: float, still: StillnessTracker, gate: ZoneGate, *per_track: dict[int, Any]
) -> None:
    """Drop every per-track entry of tracks unseen for `forget_after_s`: an edge box runs for months."""
    gone = still.prune(ts, forget_after_s)
    if gone:
        gate.forget(gone)
        for table in per_track:
            for tid in gone:
                table.pop(tid, None)


class BookedRule:
    """The end-of-watch half of a rule whose open incidents live in an `IncidentBook` (`self._book`): ending them
    when the camera stops watching, and carrying them over a restart. Rules inherit it instead of repeating it."""

    _book: IncidentBook

    def flush(self, ts: float, reason: EndReason) -> list[IncidentUpdate]:
        """End every open incident because the camera stops watching (`reason`)."""
        return self._book.flush(ts, reason)

    def export(self) -> list[OpenIncident]:
        """The open (and still pending) incidents, to continue after a restart."""
        return self._book.export()

    def restore(self, records: Iterable[OpenIncident], ts: float) -> None:
        """Take exported incidents back as pending, from capture time `ts` on."""
        self._book.restore(records, ts)
