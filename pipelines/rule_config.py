"""The config fields every incident type shares, as pydantic models (the YAML under `cameras[].incidents.<type>`).

Each incident type's module (`gridwatch.pipelines.incidents.<type>`) subclasses `RuleConfig` (or
`DwellRuleConfig`) and sets its own defaults there: the config model is the one place a type's defaults live.
Every field has bounds and a description; unknown keys are errors (`extra="forbid"`).

This module needs only pydantic: the wire contract and the config tree import the registry, and with it these
models, without loading numpy or OpenCV.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

ZoneName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
ClassName = Annotated[str, Field(min_length=1, max_length=64)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StillnessConfig(_Model):
    """When a tracked object counts as standing still (see `gridwatch.pipelines.motion`)."""

    window_s: float = Field(2.0, gt=0.1, le=60, description="History judged for 'standing still'.")
    tolerance_m: float = Field(0.8, gt=0, le=10, description="Wander allowed while still (calibrated).")
    tolerance_rel: float = Field(0.15, gt=0, le=2, description="Same as a fraction of box height (uncalibrated).")


class RuleConfig(_Model):
    """Fields every incident type has. Subclasses give `dwell_s` (and anything else they change) a default."""

    enabled: bool = Field(True, description="false keeps the settings but runs no rule.")
    zones: list[ZoneName] = Field(default_factory=list, description="Zone names; empty = the whole frame.")
    dwell_s: float = Field(gt=0, le=86400, description="Seconds the condition must hold before it is reported.")
    min_confidence: float = Field(0.3, ge=0, le=1, description="Detections below this are ignored by the rule.")
    update_every_s: float = Field(10.0, gt=0, le=3600, description="Re-send an open incident this often.")
    end_after_s: float = Field(5.0, gt=0, le=3600, description="Unseen this long = the incident is over.")
    stillness: StillnessConfig = Field(default_factory=StillnessConfig, description="When an object stands still.")


class DwellRuleConfig(RuleConfig):
    """A rule of the shape "an object of these classes stays still in a zone for `dwell_s`" (`pipelines.dwell`)."""

    classes: list[ClassName] = Field(min_length=1, description="Detector class names the rule watches.")
