"""One camera's analysis chain, readable top to bottom:

    frame -> sampler -> detector -> tracker -> ground positions -> rules -> updates -> events (+ snapshots)

`CameraPipeline.process(frame)` returns what happened on that frame; it does no network or disk I/O, so the
offline `analyze` command, the live worker and the tests all run exactly this code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import supervision as sv

from gridwatch.calibration.grid import GridLayer
from gridwatch.calibration.ground import GroundMapping
from gridwatch.edge.config import (
    CameraConfig,
    GarbageRuleConfig,
    LitteringRuleConfig,
    ParkingRuleConfig,
    StillnessConfig,
    VendorRuleConfig,
    WireRuleConfig,
)
from gridwatch.edge.evidence import Snapshot, snapshot
from gridwatch.edge.frames import Frame
from gridwatch.edge.geotag import Geotagger, build_ground_mapping, build_zones
from gridwatch.edge.sources import Sampler
from gridwatch.edge.tracking import MultiClassTracker
from gridwatch.models.base import Detector
from gridwatch.pipelines import garbage, parking, vendor, wire
from gridwatch.pipelines.base import Rule
from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule
from gridwatch.pipelines.littering import LitteringParams, LitteringRule
from gridwatch.pipelines.motion import StillnessParams
from gridwatch.pipelines.types import IncidentUpdate, observations_from_detections
from gridwatch.pipelines.zones import Zone
from gridwatch.wire.events import IncidentEvent, ModelRef


@dataclass(frozen=True)
class Emitted:
    """An event ready for the outbox, with the snapshot that goes with it (started events only)."""

    event: IncidentEvent
    snapshot: Snapshot | None


@dataclass(frozen=True)
class FrameResult:
    """Everything one analysed frame produced: what a sink (video, outbox, progress) needs, so none of them
    reaches into the pipeline. `detections` is the detector's raw output; `tracks` the same boxes after the
    tracker (with `tracker_id`) and ground positions; `open_incidents` the incidents still open after this frame."""

    camera_id: str
    frame: Frame
    detections: sv.Detections
    tracks: sv.Detections
    zones: tuple[Zone, ...]
    updates: list[IncidentUpdate]
    open_incidents: tuple[IncidentUpdate, ...]
    emitted: list[Emitted]


def _stillness(cfg: StillnessConfig) -> StillnessParams:
    return StillnessParams(window_s=cfg.window_s, tolerance_m=cfg.tolerance_m, tolerance_rel=cfg.tolerance_rel)


def _pick(zones: tuple[Zone, ...], names: list[str]) -> tuple[Zone, ...]:
    return tuple(z for z in zones if z.name in names)


DwellConfig = ParkingRuleConfig | VendorRuleConfig | WireRuleConfig | GarbageRuleConfig


def dwell_params(cfg: DwellConfig, zones: tuple[Zone, ...]) -> DwellParams:
    return DwellParams(
        zones=_pick(zones, cfg.zones), classes=frozenset(cfg.classes), dwell_s=cfg.dwell_s,
        min_confidence=cfg.min_confidence, stillness=_stillness(cfg.stillness),
        update_every_s=cfg.update_every_s, end_after_s=cfg.end_after_s,
    )


def littering_rule(cfg: LitteringRuleConfig, zones: tuple[Zone, ...], prefix: str) -> LitteringRule:
    params = LitteringParams(
        zones=_pick(zones, cfg.zones), object_classes=frozenset(cfg.object_classes),
        owner_classes=frozenset(cfg.owner_classes), dwell_s=cfg.dwell_s, min_confidence=cfg.min_confidence,
        owner_radius_m=cfg.owner_radius_m, leave_distance_m=cfg.leave_distance_m, require_owner=cfg.require_owner,
        stillness=_stillness(cfg.stillness), update_every_s=cfg.update_every_s, end_after_s=cfg.end_after_s,
    )
    return LitteringRule(params, prefix)


def build_rules(camera: CameraConfig, zones: tuple[Zone, ...], prefix: str) -> list[Rule]:
    """One rule object per enabled incident type, in a fixed order."""
    inc = camera.incidents
    dwell_rules: list[tuple[DwellConfig | None, Callable[[DwellParams, str], StationaryDwellRule]]] = [
        (inc.illegal_parking, parking.rule),
        (inc.street_vendor, vendor.rule),
        (inc.fallen_wire, wire.rule),
        (inc.exposed_garbage, garbage.rule),
    ]
    rules: list[Rule] = [make(dwell_params(cfg, zones), prefix) for cfg, make in dwell_rules if cfg and cfg.enabled]
    if inc.littering and inc.littering.enabled:
        rules.append(littering_rule(inc.littering, zones, prefix))
    return rules


def model_ref(detector: Detector) -> ModelRef:
    info = detector.info
    return ModelRef(name=info.name, version=info.version, sha256=info.sha256)


@dataclass
class CameraPipeline:
    site_id: str
    gateway_id: str
    camera: CameraConfig
    detector: Detector
    run_id: str
    grid: GridLayer | None = None
    jpeg_quality: int = 85
    sampler: Sampler = field(init=False)
    tracker: MultiClassTracker = field(init=False)
    geotagger: Geotagger = field(init=False)
    zones: tuple[Zone, ...] = ()
    rules: list[Rule] = field(default_factory=list)
    active: dict[str, IncidentUpdate] = field(default_factory=dict)
    _size: tuple[int, int] | None = None
    _last: Frame | None = None

    def __post_init__(self) -> None:
        self.sampler = Sampler(self.camera.analysis_fps)
        self.tracker = MultiClassTracker(self.camera.tracker, frame_rate=self.camera.analysis_fps)
        self.geotagger = Geotagger(self.site_id, self.gateway_id, self.camera.id, model_ref(self.detector),
                                   grid=self.grid)

    def _setup(self, frame: Frame) -> None:
        """Size-dependent parts (ground mapping, ground zones) are built on the first frame."""
        self._size = (frame.width, frame.height)
        mapping: GroundMapping | None = None
        if self.camera.calibration is not None:
            mapping = build_ground_mapping(self.camera.calibration, frame.width, frame.height)
        self.geotagger.mapping = mapping
        self.zones = build_zones(self.camera.zones, mapping)
        self.rules = build_rules(self.camera, self.zones, f"{self.camera.id}-{self.run_id}")

    def process(self, frame: Frame) -> FrameResult | None:
        """Analyse `frame` if the sampler keeps it; None when it is skipped."""
        if not self.sampler.accept(frame):
            return None
        if self._size is None:
            self._setup(frame)
        raw = self.detector.detect(frame.image)
        tracked = self.geotagger.with_ground(self.tracker.update(raw, frame.ts))
        observations = observations_from_detections(tracked)
        updates = [u for rule in self.rules for u in rule.update(observations, frame.ts)]
        self._last = frame
        emitted = self._emit(updates, frame)
        return FrameResult(self.camera.id, frame, raw, tracked, self.zones, updates, tuple(self.active.values()),
                           emitted)

    def flush(self) -> list[Emitted]:
        """End every open incident (shutdown, camera removed): nothing stays open on the central side."""
        if self._last is None:
            return []
        updates = [u for rule in self.rules for u in rule.flush(self._last.ts)]
        return self._emit(updates, self._last)

    def _emit(self, updates: list[IncidentUpdate], frame: Frame) -> list[Emitted]:
        out: list[Emitted] = []
        assert self._size is not None or not updates
        for upd in updates:
            if upd.phase == "ended":
                self.active.pop(upd.incident_id, None)
            else:
                self.active[upd.incident_id] = upd
            snap = snapshot(frame.image, upd, self.jpeg_quality) if upd.phase == "started" else None
            event = self.geotagger.to_event(
                upd, frame.ts, frame.wall, self._size or (frame.width, frame.height),
                [snap.ref] if snap else None,
            )
            out.append(Emitted(event, snap))
        return out
