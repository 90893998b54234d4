"""The config fields every incident type shares, as pydantic models (the YAML under `cameras[].incidents.<type>`).

Each incident type's module (`gridwatch.pipelines.incidents.<type>`) subclasses `RuleConfig` (or
`DwellRuleConfig`) and sets its own defaults there: the config model is the one place a type's defaults live.
Every field has bounds and a description; unknown keys are errors (`extra="forbid"`).

This module needs only pydantic: the wire contract and the config tree import the registry, and with it these
models, without loading numpy or OpenCV.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

REGION_CLASS = "unknown_object"
"""The class name of a scene-change region: a new static thing no detector class covers (`edge/scene`)."""

ZoneName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
ClassName = Annotated[str, Field(min_length=1, max_length=64)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StillnessConfig(_Model):
    """When a tracked object counts as standing still (see `gridwatch.pipelines.motion`)."""

    window_s: float = Field(2.0, gt=0.1, le=60, description="History judged for 'standing still'.")
    tolerance_m: float = Field(0.8, gt=0, le=10, description="Wander allowed while still (calibrated).")
    tolerance_rel: float = Field(0.15, gt=0, le=2, description="Same as a fraction of box height (uncalibrated).")


WidthRange = tuple[Annotated[float, Field(gt=0, le=100)], Annotated[float, Field(gt=0, le=100)]]

DEFAULT_WIDTHS_M: dict[str, tuple[float, float]] = {
    "car": (1.2, 6.0), "truck": (1.8, 14.0), "bus": (2.0, 15.0), "motorcycle": (0.4, 3.0),
    "bicycle": (0.3, 2.5), "person": (0.2, 1.5), "stall": (0.5, 8.0),
}
"""Plausible widths (metres) of a box's bottom edge on the ground, per class: between the object's own width
(seen end-on) and its diagonal (seen at an angle). A car is 1.5-2.2 m wide and up to ~5 m long."""


class PlausibilityConfig(_Model):
    """Which tracks may become a case at all (`gridwatch.pipelines.plausibility`): street furniture the detector
    takes for a vehicle, stall or bag (a gantry sign called a bus, a bollard called a person) must not."""

    enabled: bool = Field(True, description="false lets every detection of the rule's classes through.")
    min_median_score: float = Field(
        0.45, ge=0, le=1,
        description="The median detector score over the track's recent history must reach this (Frigate's "
                    "threshold): a look-alike scores low on most frames and only now and then passes the detector's "
                    "own threshold; a real object in plain view scores steadily. 0 = off.",
    )
    score_history: int = Field(20, ge=1, le=1000, description="Observations of a track the median is taken over.")
    reject_cut_at_top: bool = Field(
        True,
        description="A box whose top edge stays at the top of the frame shows the lower part of something that "
                    "continues above the view: from a street camera that is an overhead sign, gantry, bridge or "
                    "canopy, not a thing standing on the ground (ground objects are cut at the sides or bottom).",
    )
    top_margin_px: float = Field(2.0, ge=0, le=50, description="Pixels from the frame's top edge that count as cut.")
    reject_off_ground: bool = Field(
        True,
        description="On a calibrated camera, a track whose footprint stays at or above the horizon (no ground "
                    "point) is not standing on the ground: a sign or a reflection, not a parked vehicle.",
    )
    width_m: dict[ClassName, WidthRange] = Field(
        default_factory=lambda: dict(DEFAULT_WIDTHS_M),
        description="Per class, the plausible width in metres of the box's bottom edge on the ground (min, max); "
                    "checked only on a calibrated camera that measures it. Classes not listed are not checked.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> PlausibilityConfig:
        for name, (lo, hi) in self.width_m.items():
            if lo >= hi:
                raise ValueError(f"width_m.{name}: the minimum ({lo}) must be below the maximum ({hi})")
        return self


class RuleConfig(_Model):
    """Fields every incident type has. Subclasses give `dwell_s` (and anything else they change) a default."""

    enabled: bool = Field(True, description="false keeps the settings but runs no rule.")
    zones: list[ZoneName] = Field(default_factory=list, description="Zone names; empty = the whole frame.")
    dwell_s: float = Field(gt=0, le=86400, description="Seconds the condition must hold before it is reported.")
    min_confidence: float = Field(0.3, ge=0, le=1, description="Detections below this are ignored by the rule.")
    update_every_s: float = Field(
        10.0, ge=0.1, le=3600,
        description="Re-send an open incident this often (central accepts at most 10 messages per second).",
    )
    end_after_s: float = Field(5.0, gt=0, le=3600, description="Unseen this long = the incident is over.")
    stillness: StillnessConfig = Field(default_factory=StillnessConfig, description="When an object stands still.")
    plausibility: PlausibilityConfig = Field(
        default_factory=PlausibilityConfig, description="Which tracks are real enough to become a case."
    )


class DwellRuleConfig(RuleConfig):
    """A rule of the shape "an object of these classes stays still in a zone for `dwell_s`" (`pipelines.dwell`)."""

    classes: list[ClassName] = Field(min_length=1, description="Detector class names the rule watches.")
    footprint_lift: float = Field(
        0.1, ge=0, le=0.5,
        description="Which point of a box is tested against the rule's zones: the bottom-centre raised by this "
                    "fraction of the box height. The box's bottom edge is the object's nearest corner; the middle "
                    "of its footprint is higher, the more so the taller and longer the object (0.1 suits a person, "
                    "a stall or a pile; a car needs about 0.25).",
    )
