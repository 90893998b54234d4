"""Matching reported incidents to ground truth, and per-type precision, recall and delay (pure; no I/O).

A reported incident matches a truth incident of the same type when it is near (within `radius`, or the truth's own
`radius` when it has one, in metres on a calibrated camera or pixels between box centres) and did not start before
the truth's start minus `tolerance_s` (a report about something that was not there yet is not that thing). Each
truth matches at most one report and each report at most one truth (greedy, nearest first); an unmatched report is a
false positive, so a duplicate report of one thing costs precision. Delay is the report time minus (the moment the
dwell starts + the rule's dwell): how late the rule is after the moment it was allowed to fire. The dwell starts at
the truth's start, except where the truth says otherwise (`dwell_from_s`: littering's dwell counts from when the
owner walked away, while its start is the drop). Start error is the report's started_at minus the truth's start.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TruthIncident:
    type: str
    start_s: float
    x: float  # metres (east) or pixels
    y: float  # metres (north) or pixels
    clip: str = ""
    dwell_from_s: float | None = None  # when the dwell starts, if not at start_s
    radius: float | None = None  # this truth's own matching radius (a long wire's centre moves more); None = the clip's

    @property
    def dwell_start_s(self) -> float:
        return self.start_s if self.dwell_from_s is None else self.dwell_from_s


@dataclass(frozen=True)
class Reported:
    type: str
    started_s: float  # the event's started_at, seconds into the clip
    reported_s: float  # observed_at of the `started` message: when the system said so
    x: float
    y: float
    clip: str = ""


@dataclass(frozen=True)
class Match:
    truth: TruthIncident
    reported: Reported
    distance: float
    delay_s: float

    @property
    def start_error_s(self) -> float:
        return self.reported.started_s - self.truth.start_s


@dataclass(frozen=True)
class ClipResult:
    matches: list[Match]
    missed: list[TruthIncident]
    false_positives: list[Reported]


def match_clip(truths: Sequence[TruthIncident], reports: Sequence[Reported], radius: float, tolerance_s: float,
               dwell_s: dict[str, float]) -> ClipResult:
    """Greedy one-to-one matching of one clip's reports to its truth, nearest pairs first."""
    pairs: list[tuple[float, int, int]] = []
    for ti, t in enumerate(truths):
        for ri, r in enumerate(reports):
            d = math.hypot(r.x - t.x, r.y - t.y)
            near = d <= (radius if t.radius is None else t.radius)
            if r.type == t.type and near and r.started_s >= t.start_s - tolerance_s:
                pairs.append((d, ti, ri))
    used_t: set[int] = set()
    used_r: set[int] = set()
    matches: list[Match] = []
    for d, ti, ri in sorted(pairs):
        if ti in used_t or ri in used_r:
            continue
        used_t.add(ti)
        used_r.add(ri)
        t, r = truths[ti], reports[ri]
        matches.append(Match(t, r, d, r.reported_s - (t.dwell_start_s + dwell_s.get(t.type, 0.0))))
    missed = [t for i, t in enumerate(truths) if i not in used_t]
    fps = [r for i, r in enumerate(reports) if i not in used_r]
    return ClipResult(matches, missed, fps)


@dataclass
class TypeScore:
    type: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    delays: list[float] = field(default_factory=list)
    start_errors: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        """None when nothing of this type was reported (undefined, not perfect)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        """None when the truth has no incident of this type."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def delay_median_s(self) -> float | None:
        return statistics.median(self.delays) if self.delays else None

    @property
    def delay_max_s(self) -> float | None:
        return max(self.delays) if self.delays else None

    @property
    def start_error_max_s(self) -> float | None:
        """The largest |started_at - truth start|."""
        return max(abs(e) for e in self.start_errors) if self.start_errors else None


def score(results: Iterable[ClipResult], types: Iterable[str]) -> dict[str, TypeScore]:
    """Per-type counts over many clips; every type in `types` gets a row even if nothing happened."""
    out = {t: TypeScore(t) for t in types}
    for res in results:
        for m in res.matches:
            s = out.setdefault(m.truth.type, TypeScore(m.truth.type))
            s.tp += 1
            s.delays.append(m.delay_s)
            s.start_errors.append(m.start_error_s)
        for t in res.missed:
            out.setdefault(t.type, TypeScore(t.type)).fn += 1
        for r in res.false_positives:
            out.setdefault(r.type, TypeScore(r.type)).fp += 1
    return out
