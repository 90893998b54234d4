"""Values that flow through the incident pipelines. Pure data, no I/O.

A rule receives `Observation`s (one per tracked detection, built once per frame from `supervision.Detections`)
and the frame's capture timestamp, and returns `IncidentUpdate`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import supervision as sv

from gridwatch.pipelines.rule_config import REGION_CLASS as REGION_CLASS  # a scene-change region's class

Phase = Literal["started", "updated", "ended"]
EndReason = Literal["gone", "shutdown", "source_ended", "stream_lost"]
"""Why an incident ended. Only `gone` says the camera saw the scene clear (the absence grace `end_after_s`
passed, or a restored incident was not found again); the others say the camera stopped watching: the worker
stopped (`shutdown`), a file or clip ended (`source_ended`), the camera stream failed for good (`stream_lost`)."""
END_REASONS: tuple[EndReason, ...] = ("gone", "shutdown", "source_ended", "stream_lost")
ANCHOR_LIFT = 0.1
Box = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass(frozen=True)
class Observation:
    """One tracked object on one frame.

    `anchor` is the object's footprint point in pixels: the box's bottom-centre raised by `ANCHOR_LIFT` of the box
    height. From an elevated camera the box bottom is the object's *nearest* edge (a parked car's near wheels
    reach into the traffic lane in the image); a little higher is the middle of its footprint. `ground` is the
    anchor on the ground plane in metres (east, north) when the camera is calibrated, else None.

    Optional measurements from the detection's data (None when the stage that makes them did not run):
    `age_s` how long a scene-change region has been static at this observation (`region_age_s`: the stage emits
    a region only after `min_static_s` of stillness, so the drop was `age_s` before this frame); `area_m2` its
    area on the ground (`region_area_m2`); `width_m` the width of the box's bottom edge on the ground (`width_m`,
    a calibrated camera's ground mapping of the two bottom corners), which the plausibility filter compares with
    what the class can measure.
    """

    track_id: int
    class_name: str
    confidence: float
    box: Box
    anchor: Point
    ground: Point | None = None
    age_s: float | None = None
    area_m2: float | None = None
    width_m: float | None = None
    elongation: float | None = None

    @property
    def height_px(self) -> float:
        return max(1.0, self.box[3] - self.box[1])


@dataclass(frozen=True)
class ObjectRef:
    track_id: int
    class_name: str
    confidence: float
    role: str
    box: Box
    area_m2: float | None = None


@dataclass(frozen=True)
class IncidentUpdate:
    """What a rule says about one incident on one frame: it started, is still there, or ended.

    `end_reason` is set on `ended` and only there (see `EndReason`).
    """

    incident_id: str
    type: str
    phase: Phase
    seq: int
    zone: str | None
    started_ts: float
    ts: float
    dwell_s: float
    confidence: float
    box: Box
    anchor: Point
    ground: Point | None
    objects: tuple[ObjectRef, ...] = field(default_factory=tuple)
    end_reason: EndReason | None = None

    def __post_init__(self) -> None:
        if (self.phase == "ended") != (self.end_reason is not None):
            raise ValueError(f"end_reason is required on 'ended' and only there (phase {self.phase!r}, "
                             f"end_reason {self.end_reason!r})")

    @property
    def track_ids(self) -> tuple[int, ...]:
        return tuple(o.track_id for o in self.objects)


@dataclass(frozen=True)
class OpenIncident:
    """An incident a camera was watching when it stopped: enough to continue it after a restart.

    `export` on a rule gives these, `restore` takes them back. Times are capture timestamps of the pipeline
    that exported or restores them (the edge converts them to wall-clock time and back, because capture
    timestamps start again at 0 after a restart). `seq` is the last message number sent for the incident;
    `first_box` is where the incident began (what re-finding it is judged against), `box`/`anchor`/`ground`
    where it was last seen.
    """

    incident_id: str
    type: str
    seq: int
    started_ts: float
    last_ts: float
    zone: str | None
    confidence: float
    first_box: Box
    box: Box
    anchor: Point
    ground: Point | None


def observations_from_detections(detections: sv.Detections) -> list[Observation]:
    """Convert tracked `Detections` once; untracked rows (tracker_id < 0 or missing) are skipped.

    `data["class_name"]` is required; `data["ground_xy"]` (N, 2) metres is optional (NaN = not on the ground);
    so are the per-row measurements `region_age_s`, `region_area_m2`, `width_m` and `region_elongation` (NaN = not
    measured; see `Observation`).
    """
    if len(detections) == 0 or detections.tracker_id is None:
        return []
    names = detections.data.get("class_name")
    if names is None:
        raise ValueError("detections need data['class_name'] (the detector backends set it)")
    ground = detections.data.get("ground_xy")
    age, area, width, elongation = (detections.data.get(key) for key in MEASUREMENTS)
    conf = detections.confidence if detections.confidence is not None else np.ones(len(detections))
    out: list[Observation] = []
    for i in range(len(detections)):
        tid = int(detections.tracker_id[i])
        if tid < 0:
            continue
        x1, y1, x2, y2 = (float(v) for v in detections.xyxy[i])
        g: Point | None = None
        if ground is not None and np.all(np.isfinite(ground[i])):
            g = (float(ground[i][0]), float(ground[i][1]))
        out.append(Observation(tid, str(names[i]), float(conf[i]), (x1, y1, x2, y2), anchor_of((x1, y1, x2, y2)), g,
                               age_s=_finite(age, i), area_m2=_finite(area, i), width_m=_finite(width, i),
                               elongation=_finite(elongation, i)))
    return out


MEASUREMENTS = ("region_age_s", "region_area_m2", "width_m", "region_elongation")
"""`Detections.data` keys of the optional per-row measurements (`Observation.age_s`, `area_m2`, `width_m`,
`elongation`)."""


def _finite(column: np.ndarray | list[Any] | None, i: int) -> float | None:
    if column is None:
        return None
    try:
        v = float(column[i])
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def anchor_of(box: Box, lift: float = ANCHOR_LIFT) -> Point:
    """The footprint point of a box (see `Observation`): its bottom-centre raised by `lift` of the box height.
    A tall, long object needs more lift than `ANCHOR_LIFT` to reach the middle of its footprint (see
    `DwellRuleConfig.footprint_lift`)."""
    x1, y1, x2, y2 = box
    return ((x1 + x2) / 2, y2 - lift * (y2 - y1))


def anchors_of(xyxy: np.ndarray) -> np.ndarray:
    """`anchor_of` for an (N, 4) array, as (N, 2)."""
    h = xyxy[:, 3] - xyxy[:, 1]
    return np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3] - ANCHOR_LIFT * h], axis=1)
