"""fallen_wire: a wire or cable lies on, or hangs low over, the road or sidewalk, seen on several frames.

Category 10002 (架空线缆脱落). Unlike parking, the dwell is short (a few seconds: the point is to confirm the
detection over several frames, not to wait), and the stillness tolerance is wider, because a thin cable's box
changes a lot with small detector differences.

Evidence: a detected wire (`classes`) whose footprint is on the ground (a calibrated camera's ground plane; with
zones, inside a road/sidewalk zone), or a scene-change region (`unknown_object`) shaped like a wire: long and thin
(`pipelines.wire_shape`). A wire that stays up between its poles is part of the background the stage learnt at
setup (never a region), and a detected one hangs off the ground: neither is an incident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from gridwatch.pipelines.registry import IncidentType
from gridwatch.pipelines.rule_config import (
    REGION_CLASS,
    ClassName,
    DwellRuleConfig,
    PlausibilityConfig,
    StillnessConfig,
)

if TYPE_CHECKING:
    from gridwatch.pipelines.base import Rule
    from gridwatch.pipelines.lifecycle import TokenFactory
    from gridwatch.pipelines.zones import Zone


class WireRuleConfig(DwellRuleConfig):
    """A cable lying on or hanging low over the road/sidewalk; the short dwell only confirms over frames."""

    dwell_s: float = Field(3.0, gt=0, le=86400, description="Seconds a cable must be seen (confirmation only).")
    classes: list[ClassName] = Field(
        default_factory=lambda: ["wire", REGION_CLASS], min_length=1,
        description=f"Detector classes that are wires or cables; {REGION_CLASS!r} = scene-change regions, counted "
                    "only when shaped like a wire (min_elongation, max_thickness_*).",
    )
    min_elongation: float = Field(
        6.0, ge=2, le=100,
        description="A region counts as a wire only if its long side is at least this many times its short side "
                    "(minimum-area rectangle, or the band a bent one forms): a fallen cable is ~20x or more, a bag or "
                    "pile ~1-3x.",
    )
    max_thickness_m: float = Field(
        0.3, gt=0, le=2,
        description="Calibrated camera: the region's short side on the ground (from its area and elongation) must "
                    "be at most this: a cable and its shadow, not a kerb-long strip of cardboard.",
    )
    max_thickness_px: float = Field(
        20.0, gt=0, le=200,
        description="Uncalibrated camera: the same in frame pixels (box diagonal / elongation).",
    )
    stillness: StillnessConfig = Field(
        default_factory=lambda: StillnessConfig(window_s=1.5, tolerance_m=1.5, tolerance_rel=0.4),
        description="Wider than the default: a thin cable's box jumps with small detector differences. Shorter: "
                    "three agreeing sightings (1.0 s at 2 fps) confirm it; a region has been still for the "
                    "stage's min_static_s before it shows at all.",
    )
    plausibility: PlausibilityConfig = Field(
        default_factory=lambda: PlausibilityConfig(reject_cut_at_top=False),
        description="A cable lying across the view may run out of the top of the frame: boxes cut there count.",
    )


def build(
    cfg: WireRuleConfig, zones: tuple[Zone, ...], id_prefix: str, new_token: TokenFactory | None = None
) -> Rule:
    from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule  # numpy/OpenCV: load when built
    from gridwatch.pipelines.wire_shape import ShapeGatedRule, WireShape

    inner = StationaryDwellRule(DwellParams.from_config(cfg, zones), id_prefix, INCIDENT.name, new_token)
    return ShapeGatedRule(inner, WireShape(cfg.min_elongation, cfg.max_thickness_m, cfg.max_thickness_px))


INCIDENT = IncidentType(
    name="fallen_wire",
    config=WireRuleConfig,
    factory=build,
    categories=("10002",),
    description="A wire or cable lies on or hangs low over the road or sidewalk.",
)
