"""Is a tracked "vehicle" (stall, bag...) real enough to become a case? Street furniture must not.

A fixed camera sees the same sign, bollard or bin on every frame, and a detector that mistakes it for a bus
does so again and again: a track that never moves and stays for the whole dwell, exactly like a parked car.
Duration and stillness cannot separate the two; what the scene tells us about the track can:

- **score history** (Frigate's median threshold): a look-alike scores low on most frames and passes the
  detector's own threshold only now and then; a real object in plain view scores steadily. The median of the
  last `score_history` scores must reach `min_median_score`. Scene-change regions (`unknown_object`) carry no
  detector score and are not judged by it.
- **cut at the top of the frame**: a box whose top edge stays at the frame's top edge shows the lower part of
  something that continues above the view. A street camera looks down: ground objects are cut at the sides or at
  the bottom (near the camera), while what enters from the top is overhead (signs, gantries, bridges, canopies).
- **footprint off the ground** (calibrated cameras only): the ground mapping leaves `ground` empty for an
  anchor at or above the horizon. Once the rule has seen any ground point (the camera is calibrated), a track
  whose footprint stays off the ground plane is not standing on it.
- **size in metres** (calibrated cameras only, when the edge measures `Observation.width_m`): the box's bottom
  edge on the ground must fit the class (a car's is 1.2-6 m, between its width and its diagonal).

Measured on the real clips (YOLOX-Nano, conf 0.3): the highway clip's overhead gantry sign is a "bus" with its
box top at y=0-1 on every frame (median score 0.48); a second sign is a "bus"/"car" flipping with median 0.39;
the Arlington kerb cars have medians 0.51-0.75 and boxes well inside the frame.

Pure: observations in, a verdict out. `observe` every observation of the rule's classes (also the low-scored
ones: they are the evidence), then ask `doubt`.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from gridwatch.pipelines.rule_config import REGION_CLASS, PlausibilityConfig
from gridwatch.pipelines.types import Observation


@dataclass(frozen=True)
class PlausibilityParams:
    """The filter's knobs (see `gridwatch.pipelines.rule_config.PlausibilityConfig` for what each is for)."""

    enabled: bool = True
    min_median_score: float = 0.45
    score_history: int = 20
    reject_cut_at_top: bool = True
    top_margin_px: float = 2.0
    reject_off_ground: bool = True
    width_m: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    unscored_classes: frozenset[str] = frozenset({REGION_CLASS})

    @classmethod
    def from_config(cls, cfg: PlausibilityConfig) -> PlausibilityParams:
        return cls(
            enabled=cfg.enabled, min_median_score=cfg.min_median_score, score_history=cfg.score_history,
            reject_cut_at_top=cfg.reject_cut_at_top, top_margin_px=cfg.top_margin_px,
            reject_off_ground=cfg.reject_off_ground, width_m=dict(cfg.width_m),
        )


@dataclass
class _Evidence:
    scores: deque[float]
    cut_at_top: deque[bool]
    off_ground: deque[bool]
    widths: deque[float]
    last_ts: float = 0.0


@dataclass
class PlausibilityFilter:
    """Per-track evidence (bounded: `score_history` samples per track; the rule calls `prune`)."""

    params: PlausibilityParams = field(default_factory=PlausibilityParams)
    tracks: dict[int, _Evidence] = field(default_factory=dict)
    calibrated: bool = False

    def observe(self, o: Observation, ts: float) -> None:
        n = self.params.score_history
        ev = self.tracks.get(o.track_id)
        if ev is None:
            ev = self.tracks[o.track_id] = _Evidence(deque(maxlen=n), deque(maxlen=n), deque(maxlen=n),
                                                     deque(maxlen=n))
        ev.last_ts = ts
        ev.scores.append(o.confidence)
        ev.cut_at_top.append(o.box[1] <= self.params.top_margin_px)
        ev.off_ground.append(o.ground is None)
        self.calibrated = self.calibrated or o.ground is not None
        if o.width_m is not None:
            ev.widths.append(o.width_m)

    def doubt(self, o: Observation) -> str | None:
        """Why the track of `o` is not a plausible `o.class_name` (a short reason), or None when it is."""
        p = self.params
        ev = self.tracks.get(o.track_id)
        if not p.enabled or ev is None:
            return None
        if o.class_name not in p.unscored_classes and p.min_median_score > 0:
            median = statistics.median(ev.scores)
            if median < p.min_median_score:
                return f"median score {median:.2f} < {p.min_median_score:.2f}"
        if p.reject_cut_at_top and _mostly(ev.cut_at_top):
            return "cut by the top of the frame (overhead, not on the ground)"
        if p.reject_off_ground and self.calibrated and _mostly(ev.off_ground):
            return "footprint off the ground plane (at or above the horizon)"
        limits = p.width_m.get(o.class_name)
        if limits is not None and ev.widths:
            width = statistics.median(ev.widths)
            if not limits[0] <= width <= limits[1]:
                return f"{width:.1f} m wide on the ground, a {o.class_name} is {limits[0]:g}-{limits[1]:g} m"
        return None

    def prune(self, now: float, max_age_s: float) -> None:
        """Drop the evidence of tracks unseen for `max_age_s` (an edge box runs for months)."""
        for tid in [tid for tid, ev in self.tracks.items() if now - ev.last_ts > max_age_s]:
            del self.tracks[tid]

    def __len__(self) -> int:
        return len(self.tracks)


def _mostly(flags: deque[bool]) -> bool:
    return 2 * sum(flags) > len(flags)
