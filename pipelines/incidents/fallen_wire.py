"""fallen_wire: a wire or cable lies on, or hangs low over, the road or sidewalk, seen on several frames.

Category 10002 (架空线缆脱落). Unlike parking, the dwell is short (a few seconds: the point is to confirm the
detection over several frames, not to wait), and the stillness tolerance is wider, because a thin cable's box
changes a lot with small detector differences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from gridwatch.pipelines.registry import IncidentType
from gridwatch.pipelines.rule_config import ClassName, DwellRuleConfig, PlausibilityConfig, StillnessConfig

if TYPE_CHECKING:
    from gridwatch.pipelines.base import Rule
    from gridwatch.pipelines.lifecycle import TokenFactory
    from gridwatch.pipelines.zones import Zone


class WireRuleConfig(DwellRuleConfig):
    """A cable lying on or hanging low over the road/sidewalk; the short dwell only confirms over frames."""

    dwell_s: float = Field(3.0, gt=0, le=86400, description="Seconds a cable must be seen (confirmation only).")
    classes: list[ClassName] = Field(
        default_factory=lambda: ["wire"], min_length=1, description="Detector classes that are wires or cables."
    )
    stillness: StillnessConfig = Field(
        default_factory=lambda: StillnessConfig(tolerance_m=1.5, tolerance_rel=0.4),
        description="Wider than the default: a thin cable's box jumps with small detector differences.",
    )
    plausibility: PlausibilityConfig = Field(
        default_factory=lambda: PlausibilityConfig(reject_cut_at_top=False),
        description="A cable lying across the view may run out of the top of the frame: boxes cut there count.",
    )


def build(
    cfg: WireRuleConfig, zones: tuple[Zone, ...], id_prefix: str, new_token: TokenFactory | None = None
) -> Rule:
    from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule  # numpy/OpenCV: load when built

    return StationaryDwellRule(DwellParams.from_config(cfg, zones), id_prefix, INCIDENT.name, new_token)


INCIDENT = IncidentType(
    name="fallen_wire",
    config=WireRuleConfig,
    factory=build,
    categories=("10002",),
    description="A wire or cable lies on or hangs low over the road or sidewalk.",
)
