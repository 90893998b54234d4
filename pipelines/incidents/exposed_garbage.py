"""exposed_garbage: garbage or piled material is present in a zone for longer than the dwell.

Category 06010 (暴露垃圾); piled materials are 06036 (乱堆杂物). Littering catches the moment someone drops a
thing; this rule catches what lies there anyway, whoever left it, after a long dwell (default 10 min), so a bag
set down for a moment is not a case.
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


class GarbageRuleConfig(DwellRuleConfig):
    """Garbage or piled material lying in a zone, whoever left it."""

    dwell_s: float = Field(600.0, gt=0, le=86400, description="Seconds garbage must lie before it is a case.")
    classes: list[ClassName] = Field(
        default_factory=lambda: ["litter"], min_length=1, description="Detector classes that are garbage."
    )


def build(
    cfg: GarbageRuleConfig, zones: tuple[Zone, ...], id_prefix: str, new_token: TokenFactory | None = None
) -> Rule:
    from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule  # numpy/OpenCV: load when built

    return StationaryDwellRule(DwellParams.from_config(cfg, zones), id_prefix, INCIDENT.name, new_token)


INCIDENT = IncidentType(
    name="exposed_garbage",
    config=GarbageRuleConfig,
    factory=build,
    categories=("06010", "06036"),
    description="Garbage or piled material lies in a zone longer than the dwell, whoever left it.",
)
