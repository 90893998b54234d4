"""illegal_parking: a motor vehicle stays still inside a no-parking zone longer than the zone's dwell.

Category 09009 (机动车乱停放). A car waiting at a red light inside the zone is not parked: the dwell (60 s by
default; cities use 2-5 min) separates the two. See `gridwatch.pipelines.dwell` for the mechanics.
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


class ParkingRuleConfig(DwellRuleConfig):
    """A vehicle standing still in a no-parking zone."""

    dwell_s: float = Field(60.0, gt=0, le=86400, description="Seconds a vehicle may stand before it is reported.")
    end_after_s: float = Field(15.0, gt=0, le=3600, description="Unseen this long = gone (traffic hides cars).")
    classes: list[ClassName] = Field(
        default_factory=lambda: ["car", "truck", "bus", "motorcycle"], min_length=1,
        description="Detector classes that are motor vehicles.",
    )
    footprint_lift: float = Field(
        0.25, ge=0, le=0.5,
        description="Zone membership is judged at the bottom-centre of the box raised by this fraction of its "
                    "height: about the middle of a vehicle's footprint. The bottom edge itself is the vehicle's "
                    "nearest corner, about half a car's width off its middle (0.1 put a car parked inside a kerb "
                    "strip, seen from across the road, at its road-side edge and so out of the strip).",
    )


def build(
    cfg: ParkingRuleConfig, zones: tuple[Zone, ...], id_prefix: str, new_token: TokenFactory | None = None
) -> Rule:
    from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule  # numpy/OpenCV: load when built

    return StationaryDwellRule(DwellParams.from_config(cfg, zones), id_prefix, INCIDENT.name, new_token)


INCIDENT = IncidentType(
    name="illegal_parking",
    config=ParkingRuleConfig,
    factory=build,
    categories=("09009",),
    description="A motor vehicle stays still in a no-parking zone longer than the dwell.",
)
