"""littering: an object is left behind. It appears next to a person, the person walks away, the object stays.

Category 06010 (暴露垃圾): the case is the dropped thing to clear. The rule (owner, attended, left behind) is
`gridwatch.pipelines.littering.LitteringRule`; this module holds its config, defaults and factory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from gridwatch.pipelines.registry import IncidentType
from gridwatch.pipelines.rule_config import REGION_CLASS, ClassName, RuleConfig

if TYPE_CHECKING:
    from gridwatch.pipelines.base import Rule
    from gridwatch.pipelines.lifecycle import TokenFactory
    from gridwatch.pipelines.zones import Zone


class LitteringRuleConfig(RuleConfig):
    """An object a person brought and left behind (distances in metres need a calibrated camera)."""

    dwell_s: float = Field(5.0, gt=0, le=86400, description="Seconds the object must lie unattended.")
    min_confidence: float = Field(0.25, ge=0, le=1, description="Detections below this are ignored by the rule.")
    object_classes: list[ClassName] = Field(
        default_factory=lambda: ["litter", REGION_CLASS], min_length=1,
        description=f"Classes that can be left behind; {REGION_CLASS!r} = the scene-change stage's regions (new "
                    "static things no detector class covers). Detector classes add to it.",
    )
    owner_classes: list[ClassName] = Field(
        default_factory=lambda: ["person"], min_length=1, description="Classes that can own (drop) an object."
    )
    owner_radius_m: float = Field(2.0, gt=0, le=20, description="A person this close to a new object owns it.")
    leave_distance_m: float = Field(4.0, gt=0, le=100, description="The owner is gone beyond this distance.")
    require_owner: bool = Field(True, description="Only objects seen with a person count as littering.")
    owner_lookback_s: float = Field(
        10.0, ge=0, le=120,
        description="How far before an object's first appearance its owner is looked for: a scene-change region "
                    "appears only after it has been static for the stage's min_static_s, when its owner may have "
                    "walked on. Longer finds late regions' owners, but also passers-by.",
    )


def build(
    cfg: LitteringRuleConfig, zones: tuple[Zone, ...], id_prefix: str, new_token: TokenFactory | None = None
) -> Rule:
    from gridwatch.pipelines.littering import LitteringParams, LitteringRule  # numpy/OpenCV: load when built
    from gridwatch.pipelines.motion import StillnessParams
    from gridwatch.pipelines.plausibility import PlausibilityParams

    params = LitteringParams(
        zones=zones, object_classes=frozenset(cfg.object_classes), owner_classes=frozenset(cfg.owner_classes),
        dwell_s=cfg.dwell_s, min_confidence=cfg.min_confidence, owner_radius_m=cfg.owner_radius_m,
        leave_distance_m=cfg.leave_distance_m, require_owner=cfg.require_owner,
        stillness=StillnessParams.from_config(cfg.stillness), update_every_s=cfg.update_every_s,
        end_after_s=cfg.end_after_s, owner_lookback_s=cfg.owner_lookback_s,
        plausibility=PlausibilityParams.from_config(cfg.plausibility),
    )
    return LitteringRule(params, id_prefix, INCIDENT.name, new_token)


INCIDENT = IncidentType(
    name="littering",
    config=LitteringRuleConfig,
    factory=build,
    categories=("06010",),
    description="A person leaves an object behind: it stays after they walk away.",
)
