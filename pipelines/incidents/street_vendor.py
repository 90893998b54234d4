"""street_vendor: a stall, cart or vendor stays in a sidewalk/road zone longer than the dwell.

Category 09006 (占道经营); a moving vendor without a licence is 09001 (无照经营游商). A cart that is pushed along
and never stops is not road occupation; it is reported once it stands still for `dwell_s` (default 2 min).

Evidence: a detected stall or cart (`classes`), or, with no detector class for it, persons who stay with goods
spread on the ground around them: scene-change regions (`goods_classes`) that appeared while they were there,
large enough in total or several (`pipelines.vendor`). A bus-stop crowd (no goods) or a person on a bench with a
bag (one small region) is not a vendor.
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


class VendorRuleConfig(DwellRuleConfig):
    """A stall or cart standing on the sidewalk or road."""

    dwell_s: float = Field(120.0, gt=0, le=86400, description="Seconds a stall may stand before it is reported.")
    end_after_s: float = Field(15.0, gt=0, le=3600, description="Unseen this long = gone (passers-by hide it).")
    classes: list[ClassName] = Field(
        default_factory=lambda: ["stall", "cart"], min_length=1,
        description="Detector classes that are stalls or carts (each one is a vendor by itself).",
    )
    vendor_classes: list[ClassName] = Field(
        default_factory=lambda: ["person"], min_length=1, description="Who can be a vendor beside goods."
    )
    goods_classes: list[ClassName] = Field(
        default_factory=lambda: [REGION_CLASS],
        description=f"Classes that are goods on the ground; {REGION_CLASS!r} = scene-change regions (new static "
                    "things). Empty = only detected stalls/carts count.",
    )
    goods_radius_m: float = Field(
        2.5, gt=0, le=20, description="Goods count for a vendor within this distance (calibrated camera)."
    )
    goods_radius_rel: float = Field(
        1.5, gt=0, le=10, description="Same in multiples of the person's box height (uncalibrated camera)."
    )
    min_goods_area_m2: float = Field(
        0.5, ge=0, le=100,
        description="Total ground area of the goods around a vendor, calibrated camera: a blanket of goods is "
                    "~1-4 m², a bag or two beside a bench ~0.1-0.3 m².",
    )
    min_goods_area_rel: float = Field(
        0.15, ge=0, le=10,
        description="Uncalibrated: total goods box area / the person's box height squared (a 0.5 m² blanket "
                    "beside a 1.7 m person is ~0.17).",
    )
    min_goods_regions: int = Field(
        3, ge=1, le=50, description="This many separate goods regions count whatever their area (goods laid out)."
    )
    goods_appear_grace_s: float = Field(
        10.0, ge=0, le=600,
        description="Goods must appear while the vendor is there: not earlier than this before the person was "
                    "first seen (a pile that was there before someone stopped beside it is not their goods).",
    )


def build(
    cfg: VendorRuleConfig, zones: tuple[Zone, ...], id_prefix: str, new_token: TokenFactory | None = None
) -> Rule:
    from dataclasses import replace

    from gridwatch.pipelines.dwell import DwellParams  # numpy/OpenCV: load when built
    from gridwatch.pipelines.vendor import GoodsParams, VendorRule

    goods = GoodsParams(
        vendor_classes=frozenset(cfg.vendor_classes), goods_classes=frozenset(cfg.goods_classes),
        radius_m=cfg.goods_radius_m, radius_rel=cfg.goods_radius_rel, min_area_m2=cfg.min_goods_area_m2,
        min_area_rel=cfg.min_goods_area_rel, min_regions=cfg.min_goods_regions,
        appear_grace_s=cfg.goods_appear_grace_s,
    )
    params = DwellParams.from_config(cfg, zones)
    stalls = params.classes - goods.goods_classes - goods.vendor_classes  # a region or person alone is no vendor
    return VendorRule(replace(params, classes=stalls), id_prefix, INCIDENT.name, new_token, goods=goods)


INCIDENT = IncidentType(
    name="street_vendor",
    config=VendorRuleConfig,
    factory=build,
    categories=("09006", "09001"),
    description="A stall or cart, or a person with goods spread around them, stays on the sidewalk or road.",
)
