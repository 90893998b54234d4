"""street_vendor: a stall, cart or vendor stays in a sidewalk/road zone longer than the dwell.

Category 09006 (占道经营); a moving vendor without a licence is 09001 (无照经营游商). A cart that is pushed along
and never stops is not road occupation; it is reported once it stands still for `dwell_s` (default 2 min).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from gridwatch.pipelines.registry import IncidentType
from gridwatch.pipelines.rule_config import ClassName, DwellRuleConfig

if TYPE_CHECKING:
    from gridwatch.pipelines.base import Rule
    from gridwatch.pipelines.lifecycle import TokenFactory
    from gridwatch.pipelines.zones import Zone


class VendorRuleConfig(DwellRuleConfig):
    """A stall or cart standing on the sidewalk or road."""

    dwell_s: float = Field(120.0, gt=0, le=86400, description="Seconds a stall may stand before it is reported.")
    end_after_s: float = Field(15.0, gt=0, le=3600, description="Unseen this long = gone (passers-by hide it).")
    classes: list[ClassName] = Field(
        default_factory=lambda: ["stall"], min_length=1, description="Detector classes that are stalls or carts."
    )


def build(
    cfg: VendorRuleConfig, zones: tuple[Zone, ...], id_prefix: str, new_token: TokenFactory | None = None
) -> Rule:
    from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule  # numpy/OpenCV: load when built

    return StationaryDwellRule(DwellParams.from_config(cfg, zones), id_prefix, INCIDENT.name, new_token)


INCIDENT = IncidentType(
    name="street_vendor",
    config=VendorRuleConfig,
    factory=build,
    categories=("09006", "09001"),
    description="A stall or cart stands on the sidewalk or road longer than the dwell.",
)
