"""The gateway's site config: one pydantic tree loaded from YAML.

Every model forbids unknown keys (a typo is an error, not a silently ignored setting). Fields carry bounds and a
description. Checks that span fields are small `verify_*` functions whose messages name the path and the fix.
Secrets come from the environment: `GRIDWATCH_MQTT_PASSWORD` overrides `mqtt.password`, and a camera URL or
`mqtt.password` may refer to `${NAME}` (the environment, or the file named by `GRIDWATCH_CREDENTIALS_FILE`;
`gridwatch.edge.secrets`), checked at load and substituted only where used.

`load_site_config(path)` raises `ConfigError` whose message lists each bad field as `path.to.field: problem`.
Relative paths in the file are resolved against the file's folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from gridwatch.edge.secrets import check_references
from gridwatch.errors import GridwatchError
from gridwatch.models.registry import FACTORIES, DetectorSpec
from gridwatch.pipelines.registry import IncidentType, Registry, default_registry, unknown_message
from gridwatch.pipelines.rule_config import RuleConfig
from gridwatch.wire.model_signing import SigningKeyError, parse_public_key


class ConfigError(GridwatchError, ValueError):
    """The site config is invalid; the message names each bad field's path and how to fix it."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


# --- sources -------------------------------------------------------------------------------------------------
class FileSourceConfig(_Model):
    type: Literal["file"]
    path: Path = Field(description="Video file decoded by OpenCV.")
    loop: bool = Field(False, description="Start again at the end (soak tests, demos).")
    realtime: bool = Field(False, description="Pace frames at the file's fps, as a live camera would deliver them.")


class StreamSourceConfig(_Model):
    type: Literal["rtsp"]
    url: str = Field(min_length=8, description="rtsp://user:${CAM_PASSWORD}@host/stream: write credentials as "
                     "${NAME} references (environment or GRIDWATCH_CREDENTIALS_FILE), never in the file.")
    reconnect_min_s: float = Field(1.0, gt=0, le=60, description="First reconnect delay; doubles per failure.")
    reconnect_max_s: float = Field(30.0, gt=0, le=600, description="Longest delay between reconnect attempts.")


class UsbSourceConfig(_Model):
    type: Literal["usb"]
    device: int = Field(0, ge=0, le=63, description="V4L2 device index (/dev/videoN).")


class ImagesSourceConfig(_Model):
    type: Literal["images"]
    glob: str = Field(description="Glob of still images, read in sorted order (time-lapse cameras).")
    fps: float = Field(1.0, gt=0, le=120, description="Capture rate the images stand for.")


SourceConfig = Annotated[
    FileSourceConfig | StreamSourceConfig | UsbSourceConfig | ImagesSourceConfig, Field(discriminator="type")
]


# --- calibration ---------------------------------------------------------------------------------------------
class PinholeCalibration(_Model):
    """A camera whose pose is known: mounting height, tilt, heading, field of view, position."""

    type: Literal["pinhole"]
    hfov_deg: float = Field(gt=5, lt=170, description="Horizontal field of view of the analysed image.")
    height_m: float = Field(gt=0.5, le=200, description="Lens height above the ground.")
    tilt_deg: float = Field(gt=0, lt=90, description="Downward tilt of the optical axis from horizontal.")
    heading_deg: float = Field(ge=0, lt=360, description="Compass bearing the camera looks at (0 = north).")
    lat: float = Field(ge=-90, le=90, description="WGS-84 latitude of the ground point below the camera.")
    lon: float = Field(ge=-180, le=180, description="WGS-84 longitude of the ground point below the camera.")
    pixel_error_px: float = Field(2.0, gt=0, le=50, description="Assumed box-anchor error, for accuracy_m.")


class PointPair(_Model):
    pixel: tuple[float, float] = Field(description="[x, y] in pixels of the analysed frame.")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class PointsCalibration(_Model):
    """A homography fitted to >= 4 ground points seen in the image (surveyed or read off a map)."""

    type: Literal["points"]
    points: list[PointPair] = Field(min_length=4, description="Pixel <-> WGS-84 pairs on the ground plane.")
    pixel_error_px: float = Field(2.0, gt=0, le=50)


CalibrationConfig = Annotated[PinholeCalibration | PointsCalibration, Field(discriminator="type")]


# --- zones and incident rules --------------------------------------------------------------------------------
class ZoneConfig(_Model):
    name: Ident
    points: list[tuple[float, float]] | None = Field(
        None, min_length=3, description="Polygon in pixels of the analysed frame: [[x, y], ...]."
    )
    ground: list[tuple[float, float]] | None = Field(
        None, min_length=3, description="Polygon on the ground as [[lat, lon], ...]; needs a calibration."
    )

    @model_validator(mode="after")
    def _one_geometry(self) -> ZoneConfig:
        if (self.points is None) == (self.ground is None):
            raise ValueError("give exactly one of 'points' (pixels) or 'ground' ([lat, lon] pairs)")
        return self


class IgnoreMaskConfig(_Model):
    """A part of the view where nothing is reported: no detection whose footprint lies inside, and no
    scene-change foreground (a burnt-in clock or logo, a flag, a tree, a screen)."""

    name: Ident
    points: list[tuple[float, float]] = Field(
        min_length=3, description="Polygon in pixels of the analysed frame: [[x, y], ...]."
    )

    @model_validator(mode="after")
    def _a_real_polygon(self) -> IgnoreMaskConfig:
        if any(x < 0 or y < 0 for x, y in self.points):
            raise ValueError(f"points: ignore mask {self.name!r} has a negative coordinate; pixels start at 0")
        xs, ys = [p[0] for p in self.points], [p[1] for p in self.points]
        area = 0.5 * abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs))))
        if area < 1.0:
            raise ValueError(f"points: ignore mask {self.name!r} encloses no area; give at least 3 points that "
                             "are not on one line")
        return self


# The incident rules: one optional section per registered incident type (gridwatch.pipelines.registry). Each
# type's module owns its config model and defaults; this tree is derived from the registry.
class IncidentsBase(_Model):
    """Which incident rules run on this camera; a type that is absent (null) is off.

    The fields (one per registered incident type, named after it) are added by `incidents_config_model`. Use
    `configured()` / `enabled()` rather than attribute access: they are typed and follow the registry.
    """

    registry: ClassVar[Registry]

    @model_validator(mode="before")
    @classmethod
    def _known_types(cls, data: object) -> object:
        if isinstance(data, dict):
            for name in data:
                if name not in cls.registry:
                    raise ValueError(unknown_message(str(name), cls.registry.names()))
        return data

    def configured(self) -> list[tuple[IncidentType[Any], RuleConfig]]:
        """(type, its config) for every type present in the file, enabled or not, in registry order."""
        out: list[tuple[IncidentType[Any], RuleConfig]] = []
        for incident in self.registry:
            cfg = getattr(self, incident.name, None)
            if isinstance(cfg, RuleConfig):
                out.append((incident, cfg))
        return out

    def enabled(self) -> list[tuple[IncidentType[Any], RuleConfig]]:
        """(type, its config) for every type that will run, in registry order."""
        return [(t, cfg) for t, cfg in self.configured() if cfg.enabled]


def incidents_config_model(registry: Registry) -> type[IncidentsBase]:
    """The `cameras[].incidents` model for `registry`: one optional field per type, named after it."""
    fields: dict[str, Any] = {
        t.name: (t.config | None, Field(None, description=t.description)) for t in registry
    }
    base = type("IncidentsRegistryBase", (IncidentsBase,), {"registry": registry, "__module__": __name__})
    return create_model("IncidentsConfig", __base__=base, __module__=__name__, **fields)


if TYPE_CHECKING:
    IncidentsConfig = IncidentsBase
else:
    IncidentsConfig = incidents_config_model(default_registry())


SCENE_CHANGE_INCIDENTS = frozenset({"littering", "exposed_garbage", "fallen_wire", "street_vendor"})
"""Incident types that read scene-change regions (dropped or piled things, a fallen wire, vendors' goods):
`scene_change.enabled: auto` turns the stage on for them."""


def scene_change_enabled(camera: CameraConfig) -> bool:
    """Whether the scene-change stage runs on `camera` (see `SceneChangeConfig.enabled`)."""
    setting = camera.scene_change.enabled
    if setting == "auto":
        return any(t.name in SCENE_CHANGE_INCIDENTS for t, _ in enabled_incidents(camera))
    return bool(setting)


def read_classes(camera: CameraConfig) -> frozenset[str]:
    """Every detector class an enabled incident type on `camera` reads (each `*classes` list of its config):
    the detections that may stand for a scene-change region (`gridwatch.edge.scene.stage.merge_regions`). A
    class no rule reads (YOLOX-Nano calls a green bag on the pavement a "sports ball") labels nothing."""
    out: set[str] = set()
    for _, cfg in enabled_incidents(camera):
        for name in type(cfg).model_fields:
            value = getattr(cfg, name)
            if name.endswith("classes") and isinstance(value, list | tuple | set | frozenset):
                out.update(str(v) for v in value)
    return frozenset(out)


def enabled_incidents(camera: CameraConfig) -> list[tuple[IncidentType[Any], RuleConfig]]:
    """The incident types that run on `camera`, each with its config, in registry order."""
    return camera.incidents.enabled()


class TrackerConfig(_Model):
    lost_track_s: float = Field(3.0, gt=0, le=120, description="Keep a lost track this long to re-find it.")
    activation_conf: float = Field(0.3, ge=0, le=1, description="Score needed to start a new track.")
    high_conf: float = Field(
        0.3, ge=0, le=1,
        description="ByteTrack's first-stage threshold; only detections above it start tracks. Keep it near "
        "detector.conf: above it, a class the model scores weakly (a thin wire at 0.33) is never tracked.",
    )
    min_iou: float = Field(0.1, ge=0, le=1, description="Least overlap to associate a box with a track.")
    groups: list[list[str]] = Field(
        default_factory=lambda: [["car", "truck", "bus", "motorcycle", "van"]],
        description="Classes tracked as one: a model that flips a car between 'car' and 'truck' must not "
        "make two tracks (and two incidents) of it. Every other class is tracked on its own.",
    )
    group_nms_iou: float = Field(
        0.6, gt=0, le=1, description="Overlap above which two boxes of one group are the same object (keep best)."
    )


class SceneChangeConfig(_Model):
    """The class-agnostic scene-change stage (`gridwatch.edge.scene`): new static things no detector class covers.

    It runs beside the detector on the analysed frames: stabilise against the reference view, keep a long-term and
    a short-term background, and report static foreground that persists as `unknown_object` regions, which the
    tracker and rules see as ordinary detections. Times are seconds of capture time, so they hold at any rate.
    """

    enabled: Literal["auto"] | bool = Field(
        "auto",
        description="auto = on when an enabled incident type reads scene-change regions (littering, "
        "exposed_garbage, fallen_wire, street_vendor); true/false force it on or off.",
    )
    work_width: int = Field(
        320, ge=80, le=1920,
        description="Width (px) the stage works at; height follows the frame's aspect. Smaller is cheaper but "
        "loses small objects (a 320 px wide image keeps a 0.3 m bag at 20 m as a few pixels).",
    )
    min_static_s: float = Field(
        3.0, gt=0, le=3600,
        description="Seconds a pixel must stay static foreground before it belongs to a region. Shorter finds a "
        "dropped thing sooner; longer ignores things set down for a moment.",
    )
    short_term_s: float = Field(
        1.5, gt=0, le=600,
        description="Time constant of the short-term background: how fast a new still thing is absorbed into it.",
    )
    long_term_s: float = Field(
        600.0, gt=0, le=86400,
        description="Time constant of the long-term background where nothing static covers it (slow light "
        "changes); static foreground never updates it, so a left object stays visible.",
    )
    diff_threshold: float = Field(
        20.0, gt=0, le=255,
        description="Grey-level difference (0-255, after removing the global brightness offset) that counts as "
        "'different'. Higher ignores faint objects and compression noise.",
    )
    chroma_threshold: float = Field(
        0.15, ge=0, le=2,
        description="Chroma difference ((R-G)/Y or (B-G)/Y, at half the work resolution, where the grey level is "
        "48-225) that counts as 'different' like diff_threshold grey levels: a green bag or a brown box as bright "
        "as the ground. 0 = grey only (cheaper; also the case for grey input).",
    )
    min_area_px: int = Field(
        20, ge=1, le=100_000,
        description="Least region area in work-resolution pixels; smaller blobs are noise (rain, JPEG blocks).",
    )
    relearn_fraction: float = Field(
        0.35, gt=0, le=1,
        description="When more than this share of the frame differs from the long-term background at once (street "
        "lights switching on, a cloud, auto exposure), the backgrounds are relearnt instead of reporting regions.",
    )
    shadow_ratio: tuple[float, float] = Field(
        (0.45, 0.92),
        description="A region darker than the long-term background by a brightness ratio in this range, with "
        "the same chromaticity and texture, is a shadow, not an object.",
    )
    ghost_contrast_ratio: float = Field(
        1.0, gt=0, le=10,
        description="A region that stands out from its surroundings less than this times as much in the current "
        "frame as in the long-term background is a ghost (something that left, revealing the kerb) and is "
        "learnt into the background instead of reported.",
    )
    mask_classes: list[str] = Field(
        default_factory=lambda: ["person", "bicycle", "car", "motorcycle", "bus", "truck", "van"],
        description="Tracked classes whose boxes are masked out: a standing person or a parked car is never a "
        "static object.",
    )
    mask_margin: float = Field(
        0.1, ge=0, le=1, description="Masked boxes are widened by this share of their size on each side."
    )
    absorb_after_s: float = Field(
        3600.0, gt=0, le=7 * 86400,
        description="A region older than this becomes part of the long-term background (a new bench is scenery).",
    )
    max_shift_frac: float = Field(
        0.08, gt=0, le=1,
        description="A view shift beyond this share of the image diagonal cannot be compensated: the stage "
        "pauses (the camera keeps running) and raises the camera-shift warning.",
    )
    min_inliers: int = Field(
        12, ge=4, le=1000, description="Fewer matched reference features than this also pauses the stage."
    )
    settle_s: float = Field(
        5.0, gt=0, le=3600,
        description="After a pause, the view must stay steady this long before it becomes the new reference and "
        "the backgrounds are relearnt (a camera moved for good recovers).",
    )
    flicker_window_s: float = Field(
        15.0, gt=0, le=3600,
        description="Memory (s) of the per-pixel count of abrupt changes between analysed frames. A pixel that "
        "keeps changing (burnt-in clock, swaying tree, blinking light) is unstable; a region made mostly of "
        "unstable pixels is dropped (max_unstable_share).",
    )
    flicker_changes: float = Field(
        2.5, ge=1, le=1000,
        description="Decayed count of changes that makes a pixel unstable (2.5: about 3 changes within half the "
        "memory; a passing untracked thing makes 2, in and out). Lower hides more flicker but also places "
        "where untracked things pass often. A pixel is free again once the count falls below half this: at "
        "most flicker_window_s x 1.4 after its last change.",
    )
    max_unstable_share: float = Field(
        0.5, gt=0, le=1,
        description="A region whose pixels are at least this share unstable (or next to an unstable pixel) is "
        "dropped: a clock's digits, leaves, a blinking lamp.",
    )
    stabilise: bool = Field(True, description="Register frames to the reference view; off for rock-solid mounts.")


DEFAULT_DETECTOR = "default"
"""The name the single `detector:` section goes by (in `cameras[].detectors` and in error messages)."""


class CameraDetectorConfig(_Model):
    """One detector a camera runs, and how often (`cameras[].detectors[]`)."""

    name: Ident = Field(description=f"A detector named under `detectors:` ({DEFAULT_DETECTOR!r} = the `detector:` "
                        "section).")
    every_s: float = Field(
        0.0, ge=0, le=3600,
        description="Run it at most once per this many seconds of capture time; 0 = on every analysed frame. "
        "Between runs its last detections stay valid (marked with their age, `detection_age_s`), so the tracker "
        "and the rules see them on every frame until its next run.",
    )

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, data: object) -> object:
        return {"name": data} if isinstance(data, str) else data  # `- coco` is `- {name: coco}`


class CameraConfig(_Model):
    id: Ident
    source: SourceConfig
    analysis_fps: float = Field(5.0, gt=0, le=60, description="Frames per second analysed (the rest skipped).")
    detectors: list[CameraDetectorConfig] | None = Field(
        None, min_length=1,
        description="Which of the site's detectors run on this camera, each at its own rate; absent = every "
        "detector of the site on every analysed frame.",
    )
    calibration: CalibrationConfig | None = Field(None, description="Pixel -> ground mapping; none = no location.")
    zones: list[ZoneConfig] = Field(default_factory=list)
    ignore: list[IgnoreMaskConfig] = Field(
        default_factory=list,
        description="Polygons (pixels) where nothing is reported: no detections, no scene-change foreground.",
    )
    incidents: IncidentsConfig = Field(default_factory=IncidentsConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    scene_change: SceneChangeConfig = Field(default_factory=SceneChangeConfig)


# --- transport, storage --------------------------------------------------------------------------------------
class MqttConfig(_Model):
    broker: str = Field("mqtt://127.0.0.1:1883", description="mqtt://[user@]host[:port] or mqtts://...")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT version; 3.1.1 for brokers without MQTT 5.")
    prefix: str = Field("gridwatch/v1", pattern=r"^[A-Za-z0-9_./-]+$", description="Topic prefix.")
    username: str | None = None
    password: str | None = Field(None, description="Prefer the GRIDWATCH_MQTT_PASSWORD environment variable.")
    ca_file: Path | None = Field(None, description="CA bundle for mqtts://.")
    keepalive_s: int = Field(30, ge=5, le=3600)
    max_inflight: int = Field(20, ge=1, le=1000, description="Unacknowledged QoS 1 messages in flight.")
    confirm: Literal["receipt", "puback"] = Field(
        "receipt",
        description="When an outbox row may be deleted. `receipt` (default): only when central's receipt names it "
        "(central has committed it); a row with none is sent again after `receipt_timeout_s` and after every "
        "reconnect, so a broker crash loses nothing. `puback`: on the broker's PUBACK, for a central older than "
        "receipts (it sends none); a broker crash can then lose the messages it acknowledged but had not saved. "
        "With `receipt` and `evidence.publish`, central must store evidence (`--evidence-dir`): it receipts only "
        "what it receives.",
    )
    receipt_timeout_s: float = Field(
        30.0, ge=1, le=3600,
        description="With `confirm: receipt`: send a row again when no receipt came this long after its PUBACK "
        "although central has receipted rows sent after it (it was lost on the way); doubling per resend, up to "
        "15 min. Rows central has not reached yet (it is down or behind) go again only after 15 min (doubling, "
        "up to 4 h), except the newest row, which goes again after this timeout (doubling) since no later "
        "receipt can come. After a reconnect the newest `max_inflight` rows waiting for a receipt go again at once.",
    )


class OutboxConfig(_Model):
    path: Path = Field(Path("outbox.db"), description="SQLite file holding events until the broker acks them.")
    max_rows: int = Field(200_000, ge=100, description="Oldest evidence is dropped first past this bound.")


class StateConfig(_Model):
    """What the gateway keeps between runs besides the outbox."""

    path: Path | None = Field(
        None,
        description=(
            "JSON file holding the cameras' open incidents over a restart, so the same object continues the "
            "same incident and case. Default: open-incidents.json next to the outbox file."
        ),
    )


class ModelUpdateConfig(_Model):
    """Models published over the control topic (`gridwatch models publish`; `gridwatch.edge.model_update`)."""

    trusted_keys: list[str] = Field(
        default_factory=list, max_length=16,
        description="Public keys (`ed25519:<base64>`, from `gridwatch models keygen`'s NAME.pub) whose signed "
        "models this gateway installs. Empty: every model update is refused (and the refusal reported).",
    )
    dir: Path | None = Field(
        None, description="Where received models are staged and installed ones kept. Default: model-updates/ "
        "next to the outbox file.",
    )
    max_model_mb: float = Field(200.0, gt=0, le=1024, description="Largest model file accepted, in MiB.")
    transfer_timeout_s: float = Field(
        300.0, ge=5, le=86_400, description="An incomplete transfer with no chunk for this long is dropped.",
    )
    compare_frames: int = Field(
        8, ge=1, le=64, description="Recent frames (over all cameras; one analysed frame in `compare_every` per "
        "camera) both models run on before a swap. Each is a decoded frame kept in memory (~6 MB at 1080p).",
    )
    compare_every: int = Field(5, ge=1, le=1000, description="Keep one analysed frame in N for the comparison.")
    min_detection_ratio: float = Field(
        0.3, ge=0.0, le=1.0,
        description="The new model must find at least this fraction of the running model's detections on the same "
        "frames, before the swap and again during probation; below it the old model stays (or comes back).",
    )
    probation_frames: int = Field(
        50, ge=0, le=100_000,
        description="After a swap, this many analysed frames also run the previous model (one in `probation_every`) "
        "to compare detection rates on live frames; 0 turns probation off.",
    )
    probation_every: int = Field(5, ge=1, le=1000, description="Shadow-run the previous model on one frame in N.")

    @field_validator("trusted_keys")
    @classmethod
    def _keys_parse(cls, value: list[str]) -> list[str]:
        for i, text in enumerate(value):
            try:
                parse_public_key(text)
            except SigningKeyError as exc:
                raise ValueError(f"entry {i}: {exc}") from None
        return value


class EvidenceConfig(_Model):
    dir: Path = Field(Path("evidence"), description="Where snapshots are kept on the gateway.")
    jpeg_quality: int = Field(85, ge=10, le=100)
    publish: bool = Field(True, description="Send each incident's snapshot on the evidence topic.")


class HardExamplesConfig(_Model):
    """Frames saved on the gateway for labelling (`gridwatch.edge.hard_examples`), collected with
    `gridwatch data pull`: frames where a detector was unsure, and frames with scene-change regions no rule named."""

    enabled: bool = Field(False, description="Save hard examples at all.")
    dir: Path = Field(Path("hard-examples"), description="Folder on the gateway; one sub-folder per camera.")
    every_s: float = Field(
        60.0, gt=0, le=86400,
        description="At most one frame per camera per this many seconds of capture time (a sample, not a stream).",
    )
    low_conf_below: float = Field(
        0.5, gt=0, le=1,
        description="A fresh detection scoring below this (and above the detector's conf) makes the frame a hard "
        "example: the model was unsure.",
    )
    regions: bool = Field(True, description="Frames with scene-change regions that no open incident names count too.")
    region_min_age_s: float = Field(
        30.0, ge=0, le=86400,
        description="Only regions static for this long count (younger ones may still become an incident).",
    )
    max_mb: float = Field(
        500.0, gt=0, le=1_000_000, description="Disk budget for the folder; past it the oldest examples are deleted."
    )
    jpeg_quality: int = Field(90, ge=10, le=100)


class SiteConfig(_Model):
    site_id: Ident
    gateway_id: Ident
    detector: DetectorSpec | None = Field(
        None, description=f"The detector (one model); it is named {DEFAULT_DETECTOR!r} among `detectors`."
    )
    detectors: dict[Ident, DetectorSpec] = Field(
        default_factory=dict,
        description="More detectors by name (a COCO person/vehicle model, a street model...); each camera picks "
        "its own in `cameras[].detectors` with a rate. Classes of the same name from two models are the same "
        "class (rename one with `rename:` to keep them apart).",
    )
    cameras: list[CameraConfig] = Field(min_length=1)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    hard_examples: HardExamplesConfig = Field(default_factory=HardExamplesConfig)
    model_update: ModelUpdateConfig = Field(default_factory=ModelUpdateConfig)
    grid_geojson: Path | None = Field(None, description="City grid layer (GeoJSON) for grid-cell lookup.")

    @model_validator(mode="after")
    def _cross_checks(self) -> SiteConfig:
        for check in (verify_detectors_given, verify_unique_camera_ids, verify_camera_detectors_exist,
                      verify_rule_zones_exist, verify_ground_zones_calibrated, verify_unique_ignore_names):
            check(self)
        return self

    def detector_specs(self) -> dict[str, DetectorSpec]:
        """Every detector of the site by name: the `detector:` section (as 'default') first, then `detectors:`."""
        named = {DEFAULT_DETECTOR: self.detector} if self.detector is not None else {}
        return {**named, **self.detectors}

    def camera_detectors(self, camera: CameraConfig) -> list[CameraDetectorConfig]:
        """The detectors `camera` runs with their rates (absent = all of the site's, on every analysed frame)."""
        if camera.detectors is not None:
            return list(camera.detectors)
        return [CameraDetectorConfig(name=name) for name in self.detector_specs()]

    def camera(self, camera_id: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        known = ", ".join(c.id for c in self.cameras)
        raise ConfigError(f"no camera {camera_id!r} in the site config; known cameras: {known}")


def verify_detectors_given(cfg: SiteConfig) -> None:
    if cfg.detector is None and not cfg.detectors:
        raise ValueError("detector: required field is missing; add a `detector:` section (one model) or named "
                         "models under `detectors:`")
    if cfg.detector is not None and DEFAULT_DETECTOR in cfg.detectors:
        raise ValueError(f"detectors.{DEFAULT_DETECTOR}: the name {DEFAULT_DETECTOR!r} is the `detector:` section's; "
                         "rename this entry or move it to `detector:`")


def verify_camera_detectors_exist(cfg: SiteConfig) -> None:
    known = list(cfg.detector_specs())
    for i, cam in enumerate(cfg.cameras):
        seen: set[str] = set()
        for j, entry in enumerate(cam.detectors or []):
            where = f"cameras.{i}.detectors.{j}.name"
            if entry.name not in known:
                where_to = "under `detectors:`" if entry.name != DEFAULT_DETECTOR else "as the `detector:` section"
                raise ValueError(f"{where}: detector {entry.name!r} is not defined; define it {where_to} or use "
                                 f"one of {known}")
            if entry.name in seen:
                raise ValueError(f"{where}: detector {entry.name!r} is listed twice; list each detector once")
            seen.add(entry.name)


def verify_unique_camera_ids(cfg: SiteConfig) -> None:
    seen: set[str] = set()
    for i, cam in enumerate(cfg.cameras):
        if cam.id in seen:
            raise ValueError(f"cameras.{i}.id: {cam.id!r} is used twice; give each camera its own id")
        seen.add(cam.id)


def verify_rule_zones_exist(cfg: SiteConfig) -> None:
    for i, cam in enumerate(cfg.cameras):
        names = {z.name for z in cam.zones}
        for incident, rule in cam.incidents.configured():
            for zone in rule.zones:
                if zone not in names:
                    raise ValueError(
                        f"cameras.{i}.incidents.{incident.name}.zones: zone {zone!r} is not defined; "
                        f"add it under cameras.{i}.zones or use one of {sorted(names)}"
                    )


def verify_unique_ignore_names(cfg: SiteConfig) -> None:
    for i, cam in enumerate(cfg.cameras):
        seen: set[str] = set()
        for j, mask in enumerate(cam.ignore):
            if mask.name in seen:
                raise ValueError(f"cameras.{i}.ignore.{j}.name: {mask.name!r} is used twice on camera {cam.id!r}; "
                                 "give each ignore mask its own name")
            seen.add(mask.name)


def verify_ground_zones_calibrated(cfg: SiteConfig) -> None:
    for i, cam in enumerate(cfg.cameras):
        for j, zone in enumerate(cam.zones):
            if zone.ground is not None and cam.calibration is None:
                raise ValueError(
                    f"cameras.{i}.zones.{j}.ground: zone {zone.name!r} is given on the ground but camera "
                    f"{cam.id!r} has no calibration; add cameras.{i}.calibration or give the zone in pixels"
                )


def _yaml_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """`loc` as the path in the YAML: without the detector backend tag pydantic's discriminated union inserts
    (``detectors.street.onnx.conf`` is ``detectors.street.conf`` in the file)."""
    at = 1 if loc[:1] == ("detector",) else 2 if loc[:1] == ("detectors",) else None
    if at is not None and len(loc) > at + 1 and loc[at] in FACTORIES:
        return loc[:at] + loc[at + 1:]
    return loc


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid site config {source}:"]
    for err in exc.errors():
        path = ".".join(str(p) for p in _yaml_loc(err["loc"])) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling"
        elif err["type"] == "missing":
            msg = "required field is missing; add it"
        top_level = not err["loc"] and msg.startswith(("cameras", "mqtt", "detector"))
        lines.append(f"  {msg}" if top_level else f"  {path}: {msg}")
    return "\n".join(lines)


def _resolve_paths(data: object, base: Path) -> object:
    """Make relative `path`/`model`/`manifest`/... values relative to the config file's folder."""
    keys = {"path", "model", "manifest", "dir", "grid_geojson", "ca_file"}
    if isinstance(data, dict):
        out: dict[object, object] = {}
        for k, v in data.items():
            if k in keys and isinstance(v, str) and not Path(v).is_absolute():
                out[k] = str((base / v).resolve())
            else:
                out[k] = _resolve_paths(v, base)
        return out
    if isinstance(data, list):
        return [_resolve_paths(v, base) for v in data]
    return data


def parse_site_config(data: object, source: str = "<dict>", base: Path | None = None) -> SiteConfig:
    if base is not None:
        data = _resolve_paths(data, base)
    if isinstance(data, dict) and os.environ.get("GRIDWATCH_MQTT_PASSWORD"):
        mqtt = dict(data.get("mqtt") or {})
        mqtt["password"] = os.environ["GRIDWATCH_MQTT_PASSWORD"]
        data = {**data, "mqtt": mqtt}
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_site_config(path: str | Path) -> SiteConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read site config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"site config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"site config {path}: expected a mapping at the top level")
    cfg = parse_site_config(data, str(path), base=path.parent)
    check_references(secret_fields(cfg))
    return cfg


def secret_fields(cfg: SiteConfig) -> dict[str, str]:
    """The config fields that may hold `${NAME}` references, by path (checked at load, expanded where used)."""
    fields = {f"cameras.{i}.source.url": cam.source.url for i, cam in enumerate(cfg.cameras)
              if isinstance(cam.source, StreamSourceConfig)}
    if cfg.mqtt.password:
        fields["mqtt.password"] = cfg.mqtt.password
    return fields
