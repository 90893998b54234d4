"""Scenario files: the validated description of one synthetic clip.

Positions are authored in *street coordinates*, because that is how one thinks about a street scene
and it keeps scenarios valid whatever the camera heading is:

* ``along``: metres along the road (positive in the street's ``bearing_deg`` direction), 0 = the point
  of the far kerb nearest to the camera;
* ``out``: metres across the road, 0 = the far kerb line, positive onto the far sidewalk, negative
  into the road (the camera's ground point sits at ``out = -kerb_distance_m``).

Every model forbids unknown keys so a typo fails loudly with the path of the bad key
(``load_scenario`` turns pydantic's error into a ``ScenarioError`` naming file and key path).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridwatch.errors import GridwatchError

Rgb = tuple[int, int, int]


class ScenarioError(GridwatchError, ValueError):
    """A scenario file is missing, is not YAML, or fails validation; the message names the path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraSpec(_Strict):
    height_m: float = Field(6.0, gt=0.5, le=60.0, description="Mast height above the ground.")
    tilt_deg: float = Field(25.0, gt=1.0, lt=89.0, description="Optical axis below the horizon.")
    heading_deg: float = Field(0.0, description="Compass bearing of the optical axis.")
    hfov_deg: float = Field(65.0, gt=10.0, lt=170.0, description="Horizontal field of view.")
    lat: float = Field(31.2304, ge=-90.0, le=90.0, description="WGS-84 latitude below the camera.")
    lon: float = Field(121.4737, ge=-180.0, le=180.0, description="WGS-84 longitude below the camera.")


class StreetSpec(_Strict):
    bearing_deg: float = Field(270.0, description="Compass bearing of the +along axis of the road.")
    kerb_distance_m: float = Field(
        10.0, gt=0.0, le=200.0, description="Camera ground point to the far kerb line, across the road."
    )
    kerb_lane_m: float = Field(2.5, ge=1.5, le=4.0, description="Width of the no-parking strip at the kerb.")
    lanes: int = Field(2, ge=1, le=6, description="Traffic lanes beside the kerb strip.")
    lane_width_m: float = Field(3.5, ge=2.5, le=4.5)
    sidewalk_width_m: float = Field(4.5, ge=1.5, le=12.0, description="Far sidewalk, kerb to facade.")
    near_sidewalk_m: float = Field(3.0, ge=0.0, le=12.0, description="Sidewalk on the camera side.")
    zone_length_m: float = Field(60.0, gt=5.0, le=400.0, description="Length of the zones along the road.")
    poles: list[float] = Field(default_factory=list, description="`along` of street-light poles at the kerb.")
    facade: bool = Field(True, description="Draw a building facade behind the far sidewalk.")
    road_grey: int = Field(70, ge=20, le=160)
    sidewalk_grey: int = Field(150, ge=60, le=230)
    facade_colour: Rgb = (170, 150, 130)
    overhead_wire: bool = Field(False, description="An intact (unlabelled) cable strung between poles.")


class LookSpec(_Strict):
    """Photometric look; the generator varies these so the detector does not overfit one camera."""

    brightness: float = Field(1.0, ge=0.2, le=2.0)
    colour_temp_k: float = Field(6500.0, ge=2500.0, le=12000.0)
    noise_sigma: float = Field(2.0, ge=0.0, le=30.0, description="Gaussian sensor noise, grey levels.")
    blur_sigma: float = Field(0.0, ge=0.0, le=5.0, description="Gaussian blur sigma in pixels.")
    jpeg_quality: int = Field(85, ge=5, le=100)
    flicker: float = Field(0.02, ge=0.0, le=0.3, description="Per-frame brightness jitter (fraction).")
    shadows: bool = True


class LightKey(_Strict):
    t: float = Field(ge=0.0, description="Seconds from the start of the clip.")
    gain: float = Field(gt=0.0, le=4.0, description="Global brightness gain at t (1 = as rendered).")


class OsdClockSpec(_Strict):
    """A burnt-in on-screen clock (OSD), drawn by the camera over the image: it does not move with a shaking
    mount, and its seconds change every second."""

    origin: tuple[int, int] = Field((8, 20), description="Pixel of the text's bottom-left corner.")
    scale: float = Field(0.6, gt=0.1, le=4.0, description="cv2 font scale (0.6 = about 12 px high digits).")
    thickness: int | None = Field(None, ge=1, le=20,
                                  description="Stroke width in pixels; default 2 x scale (bold OSD fonts: more).")
    start_s: float = Field(12 * 3600 + 4 * 60 + 50.0, ge=0.0, lt=86400.0,
                           description="Time of day the clock shows at t = 0, in seconds after midnight.")
    date: str = Field("2026-05-17", pattern=r"^[0-9-/.]{6,10}$", description="The date printed before the time.")


class FlickerPatchSpec(_Strict):
    """A patch of the view that keeps changing: foliage swaying in the wind, or a blinking light."""

    kind: Literal["sway", "blink"]
    box: tuple[int, int, int, int] = Field(description="x1, y1, x2, y2 in pixels of the rendered frame.")
    period_s: float = Field(1.5, gt=0.05, le=60.0, description="One sway back and forth, or one on-off cycle.")
    amplitude_px: float = Field(3.0, ge=0.0, le=50.0, description="Sway: largest sideways shift of the foliage.")

    @model_validator(mode="after")
    def verify_box(self) -> FlickerPatchSpec:
        x1, y1, x2, y2 = self.box
        if not (0 <= x1 < x2 and 0 <= y1 < y2):
            raise ValueError(f"box {list(self.box)} must be [x1, y1, x2, y2] with 0 <= x1 < x2 and 0 <= y1 < y2")
        return self


class EffectsSpec(_Strict):
    """Whole-frame effects over time (see synth/effects.py): lighting changes, camera shake, and what real
    cameras show besides the street: a burnt-in clock, swaying foliage, blinking lights."""

    light: list[LightKey] = Field(
        default_factory=list,
        description="Brightness keys, linear in between: a cloud = keys seconds apart, lights on = 0.1 s apart.",
    )
    shake_px: float = Field(0.0, ge=0.0, le=20.0, description="Per-frame random shift of the view, +- pixels.")
    osd_clock: OsdClockSpec | None = Field(None, description="A burnt-in date and time, changing every second.")
    flicker_patches: list[FlickerPatchSpec] = Field(default_factory=list,
                                                    description="Swaying foliage and blinking lights.")

    @model_validator(mode="after")
    def verify_light_sorted(self) -> EffectsSpec:
        times = [k.t for k in self.light]
        if any(b < a for a, b in itertools.pairwise(times)):
            raise ValueError(f"light key times must not decrease, got {times}: sort them by t")
        return self


class Waypoint(_Strict):
    t: float = Field(ge=0.0, description="Seconds from the start of the clip.")
    along: float
    out: float


def _check_times(waypoints: list[Waypoint]) -> None:
    times = [w.t for w in waypoints]
    if any(b < a for a, b in itertools.pairwise(times)):
        raise ValueError(f"waypoint times must not decrease, got {times}: sort the waypoints by t")


class _Mover(_Strict):
    id: str = Field(min_length=1)
    waypoints: list[Waypoint] = Field(min_length=1, description="Timed path; the actor appears at the first.")
    until_s: float | None = Field(None, description="The actor disappears at this time (None = never).")

    @model_validator(mode="after")
    def verify_waypoints_sorted(self) -> _Mover:
        _check_times(self.waypoints)
        return self


class CarSpec(_Mover):
    kind: Literal["car"]
    style: Literal["sedan", "suv", "van"] = "sedan"
    colour: Rgb = (180, 30, 30)
    length_m: float = Field(4.5, ge=2.5, le=8.0)
    width_m: float = Field(1.8, ge=1.3, le=2.6)


class DropSpec(_Strict):
    t: float = Field(ge=0.0, description="When the person lets go of the object.")
    item: Literal["bag", "box"] = "bag"
    colour: Rgb = (25, 25, 25)
    size_m: float = Field(0.42, ge=0.15, le=1.0)
    side_m: float = Field(0.4, description="Offset to the person's left (negative = right).")
    pickup_s: float | None = Field(
        None, description="The person picks the object up again at this time (None = left behind): not littering."
    )

    @model_validator(mode="after")
    def verify_pickup_after_drop(self) -> DropSpec:
        if self.pickup_s is not None and self.pickup_s <= self.t:
            raise ValueError(f"pickup_s {self.pickup_s} must be after the drop t {self.t}")
        return self


class PersonSpec(_Mover):
    kind: Literal["person"]
    height_m: float = Field(1.72, ge=1.0, le=2.1)
    shirt: Rgb = (40, 90, 160)
    trousers: Rgb = (40, 40, 50)
    skin: Rgb = (200, 160, 130)
    drop: DropSpec | None = None


class LitterSpec(_Strict):
    """Litter that is just there (no one seen dropping it): exposed garbage."""

    kind: Literal["litter"]
    id: str = Field(min_length=1)
    t: float = Field(0.0, ge=0.0, description="Appearance time.")
    along: float
    out: float
    item: Literal["bag", "box", "pile"] = "bag"
    colour: Rgb = (25, 25, 25)
    size_m: float = Field(0.42, ge=0.15, le=1.5)
    until_s: float | None = None


class BulkySpec(_Strict):
    """Bulky waste dumped on the street (an old fridge, a mattress), with no one seen leaving it: exposed garbage.

    No detector class covers it, so it is rendered *unlabelled* (no YOLO label, never in a training set): only
    the class-agnostic scene-change stage can find it. The demo uses it to show that path."""

    kind: Literal["bulky"]
    id: str = Field(min_length=1)
    t: float = Field(0.0, ge=0.0, description="Appearance time.")
    along: float
    out: float
    yaw_deg: float = Field(0.0, description="Rotation relative to the road axis.")
    item: Literal["fridge", "mattress"] = "fridge"
    colour: Rgb = (235, 235, 235)
    size_m: float = Field(1.7, ge=0.8, le=2.2, description="A fridge's height or a mattress's length.")
    until_s: float | None = None


class StallSpec(_Strict):
    kind: Literal["stall"]
    id: str = Field(min_length=1)
    t: float = Field(0.0, ge=0.0, description="Appearance time (set up).")
    along: float
    out: float
    yaw_deg: float = Field(0.0, description="Rotation relative to the road axis.")
    style: Literal["canopy", "umbrella", "cart"] = "canopy"
    canopy: Rgb = (200, 40, 40)
    canopy2: Rgb = (240, 240, 240)
    table: Rgb = (120, 80, 50)
    length_m: float = Field(1.6, ge=0.6, le=4.0)
    until_s: float | None = None


class WireSpec(_Strict):
    """A cable strung from a pole top; at ``fall_s`` its free end drops and it lies on the sidewalk."""

    kind: Literal["wire"]
    id: str = Field(min_length=1)
    pole_along: float
    pole_out: float = Field(0.5)
    pole_height_m: float = Field(7.0, ge=2.0, le=15.0)
    span_along: float = Field(30.0, description="`along` offset of the far attachment while intact.")
    fall_s: float | None = Field(None, ge=0.0, description="When the cable falls (None = stays up).")
    fall_duration_s: float = Field(1.2, gt=0.0, le=10.0)
    lie_length_m: float = Field(6.0, ge=1.0, le=30.0, description="Length lying on the ground.")
    lie_out: float = Field(2.0, description="`out` of the lying cable (on the sidewalk by default).")
    thickness_m: float = Field(0.07, ge=0.01, le=0.3)
    colour: Rgb = (20, 20, 20)


ActorSpec = Annotated[
    Union[CarSpec, PersonSpec, LitterSpec, BulkySpec, StallSpec, WireSpec], Field(discriminator="kind")
]


class Scenario(_Strict):
    name: str = "scenario"
    seed: int = 0
    duration_s: float = Field(10.0, gt=0.0, le=3600.0)
    fps: float = Field(10.0, gt=0.0, le=60.0)
    resolution: tuple[int, int] = (640, 360)
    camera: CameraSpec = CameraSpec()
    street: StreetSpec = StreetSpec()
    look: LookSpec = LookSpec()
    effects: EffectsSpec = EffectsSpec()
    actors: list[ActorSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def verify_actor_ids_unique(self) -> Scenario:
        ids = [a.id for a in self.actors]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"actor ids must be unique, duplicated: {dupes}; rename them")
        return self

    @model_validator(mode="after")
    def verify_resolution(self) -> Scenario:
        w, h = self.resolution
        if not (16 <= w <= 4096 and 16 <= h <= 4096):
            raise ValueError(f"resolution {w}x{h} out of range: use 16..4096 per side")
        return self

    @property
    def frame_count(self) -> int:
        return max(1, round(self.duration_s * self.fps))


def _format_error(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid scenario"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        lines.append(f"  {loc or '<root>'}: {e['msg']}")
    return "\n".join(lines)


def parse_scenario(data: object, source: str = "<scenario>") -> Scenario:
    """Validate already-parsed YAML/JSON data; errors name ``source`` and the key path."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(_format_error(source, err)) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise ScenarioError(f"{p}: cannot read scenario: {err}") from None
    except yaml.YAMLError as err:
        raise ScenarioError(f"{p}: not valid YAML: {err}") from None
    return parse_scenario(data, str(p))
