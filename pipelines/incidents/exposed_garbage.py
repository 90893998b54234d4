"""exposed_garbage: garbage or piled material is present in a zone for longer than the dwell.

What counts: a detector class for garbage (the demo model's `litter`, the street model's `garbage`), or a
scene-change region (`unknown_object`: a new static thing no detector class covers) that nobody was seen putting
down. A region that appeared where a person was (looking back `owner_lookback_s`) is that person's: littering
reports it if they leave it. The event's subject carries the region's area in m² on a calibrated camera. Garbage
(or a region) at a detected bin (`bin_classes`, judged as `pipelines.bins` says) is an overflowing bin, 06042:
overflowing_bin's case, not this one.

Category 06010 (暴露垃圾); piled materials are 06036 (乱堆杂物). Littering catches the moment someone drops a
thing; this rule catches what lies there anyway, whoever left it, after a long dwell (default 10 min), so a bag
set down for a moment is not a case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from gridwatch.pipelines.registry import IncidentType
from gridwatch.pipelines.rule_config import REGION_CLASS, ClassName, DwellRuleConfig

if TYPE_CHECKING:
    from gridwatch.pipelines.base import Rule
    from gridwatch.pipelines.lifecycle import TokenFactory
    from gridwatch.pipelines.zones import Zone


class GarbageRuleConfig(DwellRuleConfig):
    """Garbage or piled material lying in a zone, whoever left it."""

    dwell_s: float = Field(600.0, gt=0, le=86400, description="Seconds garbage must lie before it is a case.")
    classes: list[ClassName] = Field(
        default_factory=lambda: ["litter", "garbage", REGION_CLASS], min_length=1,
        description=f"Detector classes that are garbage; {REGION_CLASS!r} = scene-change regions nobody put down.",
    )
    owner_classes: list[ClassName] = Field(
        default_factory=lambda: ["person"], min_length=1,
        description="Who can put a region down (an owned region is littering's, not exposed garbage).",
    )
    owner_radius_m: float = Field(2.0, gt=0, le=20, description="A person this close to a new region owns it.")
    owner_lookback_s: float = Field(
        10.0, ge=0, le=120, description="How far before a region's first appearance its owner is looked for."
    )
    bin_classes: list[ClassName] = Field(
        default_factory=lambda: ["garbage_bin"],
        description="Garbage at a bin of these classes is an overflowing bin (overflowing_bin's case, 06042), not "
        "exposed garbage; empty = count it here too.",
    )
    bin_min_overlap: float = Field(
        0.3, gt=0, le=1, description="As overflowing_bin's min_overlap: keep them equal so no pile is both cases."
    )
    bin_margin: float = Field(
        0.2, ge=0, le=2, description="As overflowing_bin's bin_margin: keep them equal so no pile is both cases."
    )
    max_region_elongation: float = Field(
        6.0, gt=1, le=100,
        description="Regions at least this long for their width are wires (fallen_wire's case), not garbage; "
        "keep it at fallen_wire's min_elongation.",
    )


def build(
    cfg: GarbageRuleConfig, zones: tuple[Zone, ...], id_prefix: str, new_token: TokenFactory | None = None
) -> Rule:
    from dataclasses import replace

    from gridwatch.pipelines.bins import BinGarbageExcludedRule, BinGeometry  # numpy/OpenCV: load when built
    from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule
    from gridwatch.pipelines.owners import OwnerParams
    from gridwatch.pipelines.wire_shape import WiresExcludedRule

    owners = OwnerParams(cfg.owner_radius_m, 2 * cfg.owner_radius_m, cfg.owner_lookback_s)
    params = replace(DwellParams.from_config(cfg, zones), owners=owners, owner_classes=frozenset(cfg.owner_classes))
    inner = StationaryDwellRule(params, id_prefix, INCIDENT.name, new_token)
    geometry = BinGeometry(frozenset(cfg.bin_classes), cfg.bin_min_overlap, cfg.bin_margin)
    at_bins_excluded = BinGarbageExcludedRule(inner, geometry, garbage_classes=frozenset(cfg.classes))
    return WiresExcludedRule(at_bins_excluded, cfg.max_region_elongation)


INCIDENT = IncidentType(
    name="exposed_garbage",
    config=GarbageRuleConfig,
    factory=build,
    categories=("06010", "06036"),
    description="Garbage or piled material lies in a zone longer than the dwell, whoever left it.",
)
