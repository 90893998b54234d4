"""Is a tracked object standing still, and since when? Measured on capture timestamps, never frame counts.

Positions are ground metres when the camera is calibrated (thresholds then mean the same at 5 m and at 50 m)
and pixels otherwise, with the tolerance scaled by the box height so a far car and a near car are judged alike.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from gridwatch.pipelines.rule_config import StillnessConfig
from gridwatch.pipelines.types import Observation


@dataclass(frozen=True)
class StillnessParams:
    """Knobs of the stationary test.

    window_s: how much recent history is judged. Longer windows ignore slow creeping less but react later.
    tolerance_m: largest distance (metres) a still object's ground point may wander inside the window; covers
        detector jitter (boxes breathe by ~5-10 % of their size). Used when the observation has a ground point.
    tolerance_rel: the same for uncalibrated cameras, as a fraction of the box height in pixels.
    min_coverage: fraction of the window that must be covered by observations before we call anything still,
        so a track seen for one frame is never "still".
    """

    window_s: float = 2.0
    tolerance_m: float = 0.8
    tolerance_rel: float = 0.15
    min_coverage: float = 0.6

    @classmethod
    def from_config(cls, cfg: StillnessConfig) -> StillnessParams:
        return cls(window_s=cfg.window_s, tolerance_m=cfg.tolerance_m, tolerance_rel=cfg.tolerance_rel)


@dataclass
class _History:
    samples: deque[tuple[float, float, float, float]] = field(default_factory=deque)  # ts, x, y, tolerance
    still_since: float | None = None
    last_ts: float = 0.0


@dataclass
class StillnessTracker:
    params: StillnessParams = field(default_factory=StillnessParams)
    _tracks: dict[int, _History] = field(default_factory=dict)

    def update(self, obs: Observation, ts: float) -> float | None:
        """Record `obs` at `ts`; return the capture time since which it has been still, or None if moving."""
        hist = self._tracks.setdefault(obs.track_id, _History())
        if obs.ground is not None:
            x, y, tol = obs.ground[0], obs.ground[1], self.params.tolerance_m
        else:
            x, y, tol = obs.anchor[0], obs.anchor[1], self.params.tolerance_rel * obs.height_px
        hist.samples.append((ts, x, y, tol))
        hist.last_ts = ts
        self._trim(hist, ts)
        if self._is_still(hist, ts):
            if hist.still_since is None:
                hist.still_since = hist.samples[0][0]
        else:
            hist.still_since = None
        return hist.still_since

    def _trim(self, hist: _History, ts: float) -> None:
        while len(hist.samples) > 1 and hist.samples[1][0] <= ts - self.params.window_s:
            hist.samples.popleft()

    def _is_still(self, hist: _History, ts: float) -> bool:
        span = ts - hist.samples[0][0]
        if span < self.params.min_coverage * self.params.window_s:
            return False
        pts = np.array([(s[1], s[2]) for s in hist.samples])
        centre = np.median(pts, axis=0)
        spread = float(np.max(np.linalg.norm(pts - centre, axis=1)))
        return spread <= hist.samples[-1][3]

    def still_since(self, track_id: int) -> float | None:
        hist = self._tracks.get(track_id)
        return hist.still_since if hist else None

    def forget(self, track_ids: set[int]) -> None:
        """Drop these tracks' history: seen again, they must stand still for a whole window anew."""
        for tid in track_ids:
            self._tracks.pop(tid, None)

    def prune(self, now: float, max_age_s: float) -> set[int]:
        """Drop tracks unseen for `max_age_s`; returns their ids so other per-track state can be dropped too."""
        gone = {tid for tid, h in self._tracks.items() if now - h.last_ts > max_age_s}
        for tid in gone:
            del self._tracks[tid]
        return gone

    def __len__(self) -> int:
        return len(self._tracks)
