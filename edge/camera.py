"""One camera's analysis chain, readable top to bottom:

    frame -> sampler -> detectors (+ scene-change regions) -> tracker -> ground positions -> rules -> updates
          -> events (+ snapshots)

The detectors are the camera's (`gridwatch.edge.detectors`): each runs at its own rate, and a slower one's last
detections stay valid (with their age) until its next run.

The scene-change stage (`gridwatch.edge.scene`, on when `scene_change_enabled`) runs beside the detector on the
same frame, masks the persons and vehicles of the previous frame's tracks, and its `unknown_object` regions are
merged with the detections before the tracker, so rules see them as ordinary observations. The camera's ignore
masks (`cameras[].ignore`, `gridwatch.edge.ignore`) drop detections whose footprint lies inside them and are never
scene-change foreground.

`CameraPipeline.process(frame)` returns what happened on that frame; it does no network or disk I/O, so the
offline `analyze` command, the live worker and the tests all run exactly this code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import supervision as sv

from gridwatch.calibration.grid import GridLayer
from gridwatch.calibration.ground import GroundMapping
from gridwatch.edge.config import CameraConfig, enabled_incidents, read_classes, scene_change_enabled
from gridwatch.edge.detectors import CameraDetectors, DetectorSet, camera_detectors
from gridwatch.edge.evidence import Snapshot, snapshot
from gridwatch.edge.frames import Frame
from gridwatch.edge.geotag import Geotagger, build_ground_mapping, build_zones
from gridwatch.edge.ignore import build_ignore, drop_ignored
from gridwatch.edge.resume import SavedIncident, to_capture, to_wall
from gridwatch.edge.scene.stage import SceneChangeStage, SceneOutput, merge_regions
from gridwatch.edge.sources import Sampler
from gridwatch.edge.tracking import MultiClassTracker
from gridwatch.models.base import Detector, ModelInfo
from gridwatch.pipelines.base import Rule
from gridwatch.pipelines.lifecycle import TokenFactory
from gridwatch.pipelines.types import EndReason, IncidentUpdate, observations_from_detections
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
    reaches into the pipeline. `detections` is the detectors' output (each row with its
    `detector` and `detection_age_s`); `tracks` the same boxes after the
    tracker (with `tracker_id`) and ground positions; `open_incidents` the incidents still open after this frame.
    `scene` is the scene-change stage's output on this frame (regions, view shift, paused), None when it is off."""

    camera_id: str
    frame: Frame
    detections: sv.Detections
    tracks: sv.Detections
    zones: tuple[Zone, ...]
    updates: list[IncidentUpdate]
    open_incidents: tuple[IncidentUpdate, ...]
    emitted: list[Emitted]
    scene: SceneOutput | None = None


def random_token() -> str:
    """The unique part of an incident id: random, so ids differ across restarts and gateways and are not guessable."""
    return uuid.uuid4().hex[:16]


def build_rules(
    camera: CameraConfig, zones: tuple[Zone, ...], prefix: str, new_token: TokenFactory | None = None
) -> list[Rule]:
    """One rule per enabled incident type, in registry order; each type's module builds its own rule."""
    return [incident.build(cfg, zones, prefix, new_token) for incident, cfg in enabled_incidents(camera)]


def model_ref(detector: Detector | ModelInfo) -> ModelRef:
    info = detector if isinstance(detector, ModelInfo) else detector.info
    return ModelRef(name=info.name, version=info.version, sha256=info.sha256)


@dataclass
class CameraPipeline:
    """One camera's chain (see the module docstring).

    detector: the site's detectors by name (`edge.detectors.load_detectors`; the camera runs those its config
        lists), or one detector, run on every analysed frame.
    restored: open incidents this camera had when it last stopped (`edge.resume`); they are handed to the rules
        on the first analysed frame and continue if found again. `export()` gives the camera's open incidents
        back in the same form after `flush`.
    new_token: the unique part of new incident ids (`{camera}-{type}-{token}`); random unless a test fixes it.
    """

    site_id: str
    gateway_id: str
    camera: CameraConfig
    detector: Detector | DetectorSet
    grid: GridLayer | None = None
    jpeg_quality: int = 85
    restored: list[SavedIncident] = field(default_factory=list)
    new_token: TokenFactory = random_token
    sampler: Sampler = field(init=False)
    detectors: CameraDetectors = field(init=False)
    tracker: MultiClassTracker = field(init=False)
    geotagger: Geotagger = field(init=False)
    zones: tuple[Zone, ...] = ()
    ignore: tuple[Zone, ...] = ()
    rules: list[Rule] = field(default_factory=list)
    active: dict[str, IncidentUpdate] = field(default_factory=dict)
    scene: SceneChangeStage | None = None
    _tracks: sv.Detections | None = None
    _size: tuple[int, int] | None = None
    _last: Frame | None = None
    _read: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.sampler = Sampler(self.camera.analysis_fps)
        self.detectors = camera_detectors(self.camera, self.detector)
        self.tracker = MultiClassTracker(self.camera.tracker, frame_rate=self.camera.analysis_fps)
        self.geotagger = Geotagger(self.site_id, self.gateway_id, self.camera.id, model_ref(self.detectors.info),
                                   grid=self.grid)

    def _setup(self, frame: Frame) -> None:
        """Size-dependent parts (ground mapping, ground zones) are built on the first frame."""
        self._size = (frame.width, frame.height)
        mapping: GroundMapping | None = None
        if self.camera.calibration is not None:
            mapping = build_ground_mapping(self.camera.calibration, frame.width, frame.height)
        self.geotagger.mapping = mapping
        self.ignore = build_ignore(self.camera.ignore)
        if scene_change_enabled(self.camera):
            self.scene = SceneChangeStage(self.camera.scene_change, mapping, self.camera.id, self.ignore)
        self.zones = build_zones(self.camera.zones, mapping)
        self.rules = build_rules(self.camera, self.zones, self.camera.id, self.new_token)
        self._read = read_classes(self.camera)
        records = [to_capture(saved, frame.ts, frame.wall) for saved in self.restored]
        for rule in self.rules:
            rule.restore(records, frame.ts)
        self.restored = []

    def process(self, frame: Frame) -> FrameResult | None:
        """Analyse `frame` if the sampler keeps it; None when it is skipped."""
        if not self.sampler.accept(frame):
            return None
        if self._size is None:
            self._setup(frame)
        raw = self.detectors.detect(frame.image, frame.ts)  # a model update may swap a detector between frames
        scene = self.scene.update(frame.image, frame.ts, self._tracks) if self.scene is not None else None
        kept = drop_ignored(raw, self.ignore)
        found = merge_regions(kept, scene.regions, self._read) if scene is not None else kept
        tracked = self.geotagger.with_ground(self.tracker.update(found, frame.ts))
        self._tracks = tracked
        observations = observations_from_detections(tracked)
        updates = [u for rule in self.rules for u in rule.update(observations, frame.ts)]
        self._last = frame
        emitted = self._emit(updates, frame)
        return FrameResult(self.camera.id, frame, raw, tracked, self.zones, updates, tuple(self.active.values()),
                           emitted, scene)

    def flush(self, reason: EndReason) -> list[Emitted]:
        """End every open incident because the camera stops watching (`reason`): nothing stays open centrally."""
        if self._last is None:
            return []
        updates = [u for rule in self.rules for u in rule.flush(self._last.ts, reason)]
        return self._emit(updates, self._last)

    def export(self) -> list[SavedIncident]:
        """The open incidents to continue after a restart, in wall-clock time (call after `flush`)."""
        last = self._last
        if last is None:  # never analysed a frame: what it was given is still to be continued
            return list(self.restored)
        return [to_wall(r, self.camera.id, last.ts, last.wall) for rule in self.rules for r in rule.export()]

    def _model_of(self, update: IncidentUpdate) -> ModelRef:
        """The model that found the incident's subject (see `edge.detectors`)."""
        subject = next((o for o in update.objects if o.role == "subject"), None)
        subject = subject or (update.objects[0] if update.objects else None)
        return model_ref(self.detectors.model_for(subject.class_name) if subject else self.detectors.info)

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
                [snap.ref] if snap else None, model=self._model_of(upd),
            )
            out.append(Emitted(event, snap))
        return out
